"""Notification channels behind one interface (domain.ports.Channel): in-app and e-mail here.

WeCom, DingTalk, Feishu, SMS and webhook robots are added by the integration
service behind the same interface; until one is configured, a notify action
naming it logs "channel not configured" for it and goes on with the others.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from workflow_service.domain.ports import Channel, Delivery, Message, WorkflowStore


class InAppChannel:
    """The notification list of each user (with unread counts), in the workflow's own store."""

    name = "in_app"

    def __init__(self, store: WorkflowStore) -> None:
        self._store = store

    @property
    def configured(self) -> bool:
        """Always available."""
        return True

    def send(self, message: Message) -> Delivery:
        """One notification per recipient; its id is the action's key and the user, so a repeat adds none."""
        now = datetime.now(UTC)
        docs = [
            {
                "_id": f"{message.key}:{user.user_id}",
                "tenant_id": message.tenant_id,
                "user_id": user.user_id,
                "title": message.title,
                "body": message.body,
                "record_id": message.record_id,
                "form_id": message.form_id,
                "read": False,
                "created_at": now,
            }
            for user in message.recipients
        ]
        self._store.add_notifications(docs)
        return Delivery(self.name, "sent", sent_to=[u.user_id for u in message.recipients])


class EmailChannel:
    """E-mail over SMTP (optionally STARTTLS and a login); "not configured" without a host."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str = "crm@localhost",
        user: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._user = user
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    @property
    def configured(self) -> bool:
        """True once SMTP_HOST is set."""
        return bool(self._host)

    def send(self, message: Message) -> Delivery:
        """One mail per recipient with an address; an SMTP server that does not answer raises (retried)."""
        targets = [u for u in message.recipients if u.email]
        if not targets:
            return Delivery(self.name, "no_address", "no recipient has an e-mail address")
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            if self._starttls:
                smtp.starttls()
            if self._user:
                smtp.login(self._user, self._password)
            for user in targets:
                mail = EmailMessage()
                mail["From"] = self._sender
                mail["To"] = formataddr((user.name, user.email))
                mail["Subject"] = message.title
                mail["Message-ID"] = make_msgid(idstring=message.key.replace(":", ".")[:60] or None)
                mail.set_content(message.body or message.title)
                smtp.send_message(mail)
        return Delivery(self.name, "sent", sent_to=[u.user_id for u in targets])


def build_channels(
    store: WorkflowStore,
    *,
    smtp_host: str = "",
    smtp_port: int = 25,
    smtp_from: str = "crm@localhost",
    smtp_user: str = "",
    smtp_password: str = "",
    smtp_starttls: bool = False,
) -> dict[str, Channel]:
    """The channels of this installation by name (only the ones that exist; others are "not configured")."""
    return {
        "in_app": InAppChannel(store),
        "email": EmailChannel(
            smtp_host, smtp_port, sender=smtp_from, user=smtp_user, password=smtp_password, starttls=smtp_starttls
        ),
    }
