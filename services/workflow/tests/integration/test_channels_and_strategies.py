"""E-mail over a real (local) SMTP server, scheduled automations, and the other assignment strategies.

The SMTP server is ours, in the test: a few lines of the protocol on a local socket, so the
channel's real smtplib conversation is checked end to end (an outside system, mocked by a
real server as the guide asks).
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from crm_runtime.testing import free_port
from services.workflow.tests.integration.support import ADMIN, SALES, TENANT, World
from workflow_service.channels import EmailChannel
from workflow_service.domain.ports import DirectoryUser, Message

pytestmark = pytest.mark.integration


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP: EHLO/HELO, MAIL, RCPT, DATA, QUIT; keeps every message."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        sender, rcpts = "", []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == "MAIL":
                sender, rcpts = line.decode().strip(), []
                self.wfile.write(b"250 ok\r\n")
            elif verb == "RCPT":
                rcpts.append(line.decode().strip())
                self.wfile.write(b"250 ok\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.server.messages.append({"from": sender, "to": rcpts, "data": body})  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture()
def smtp() -> Iterator[Any]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), _Smtp)
    srv.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_email_goes_to_each_recipient_with_an_address_over_smtp(smtp: Any) -> None:
    channel = EmailChannel("127.0.0.1", smtp.server_address[1], sender="crm@example.com")
    users = (
        DirectoryUser("t", "u1", "张三", email="zhang@example.com"),
        DirectoryUser("t", "u2", "李四"),  # no address
    )
    delivery = channel.send(Message("t", users, "客户“华信”24 小时无跟进", "请尽快跟进", key="run:0"))

    assert delivery.status == "sent" and delivery.sent_to == ["u1"]
    [mail] = smtp.messages
    assert "zhang@example.com" in mail["to"][0]
    parsed = email.message_from_bytes(mail["data"], policy=email.policy.default)
    assert parsed["Subject"] == "客户“华信”24 小时无跟进" and parsed["To"] == "张三 <zhang@example.com>"
    assert parsed.get_content().strip() == "请尽快跟进"
    assert EmailChannel("", 25).configured is False
    down = EmailChannel("127.0.0.1", free_port(), timeout=1.0)
    with pytest.raises(OSError):
        down.send(Message("t", users[:1], "x", "y"))


def test_a_scheduled_automation_runs_once_per_firing_for_each_matching_record(world: World) -> None:
    automation = world.uc.create(
        ADMIN,
        {
            "name": "每天 9 点提醒 A 类客户",
            "form": "customer",
            "trigger": {"type": "schedule", "cron": "0 9 * * *"},
            "actions": [{"type": "notify", "recipients": [{"type": "owner"}], "title": "今日跟进 {客户名称}"}],
        },
    )
    for i in range(3):
        world.records.add(TENANT, "customer", {"customer_name": f"客户{i}"}, owner_id=SALES[i])
    world.records.events.clear()
    item = world.store.timers.find_one({"_id": f"sched:{automation['id']}"})
    assert item is not None and item["state"] == "pending"
    due = item["due_at"]

    world.clock_now = due.replace(tzinfo=world.clock_now.tzinfo) + timedelta(minutes=1)
    assert world.engine.sweep() == 1
    assert world.engine.sweep() == 0  # armed again for tomorrow, not now
    for i in range(3):
        notes, _, _ = world.uc.notifications(type(ADMIN)(tenant_id=TENANT, user_id=SALES[i]))
        assert [n["title"] for n in notes] == [f"今日跟进 客户{i}"]
    again = world.store.timers.find_one({"_id": f"sched:{automation['id']}"})
    assert again is not None and again["due_at"] > due and again["state"] == "pending"


def test_load_balanced_and_rule_assignment(world: World) -> None:
    for i in range(3):
        world.records.add(TENANT, "customer", {"customer_name": f"旧{i}"}, owner_id=SALES[0])
    world.records.add(TENANT, "customer", {"customer_name": "旧x"}, owner_id=SALES[1])
    world.records.events.clear()
    world.uc.create(
        ADMIN,
        {
            "name": "按负载分配",
            "form": "customer",
            "trigger": {"type": "record_created"},
            "condition": {
                "and": [{"field": "owner_id", "op": "is_empty"}, {"field": "source", "op": "eq", "value": "展会"}]
            },
            "actions": [{"type": "assign_owner", "strategy": "load_balanced", "users": SALES[:2]}],
        },
    )
    world.uc.create(
        ADMIN,
        {
            "name": "按来源分配",
            "form": "customer",
            "trigger": {"type": "record_created"},
            "condition": {
                "and": [{"field": "owner_id", "op": "is_empty"}, {"field": "source", "op": "eq", "value": "官网"}]
            },
            "actions": [
                {
                    "type": "assign_owner",
                    "strategy": "rule",
                    "rules": [{"when": {"field": "level", "op": "eq", "value": "A"}, "users": [SALES[4]]}],
                    "users": [SALES[3]],
                }
            ],
        },
    )
    fair = world.records.add(TENANT, "customer", {"customer_name": "展会客户", "source": "exhibition"})
    grade_a = world.records.add(TENANT, "customer", {"customer_name": "A 类", "source": "website", "level": "A"})
    other = world.records.add(TENANT, "customer", {"customer_name": "B 类", "source": "website", "level": "B"})
    for event in (fair, grade_a, other):
        world.engine.handle_event(event)

    owner = {r["data"]["customer_name"]: r["owner_id"] for r in world.records.records.values()}
    assert owner["展会客户"] == SALES[1]  # owns 1, against 3
    assert owner["A 类"] == SALES[4] and owner["B 类"] == SALES[3]


def test_a_departments_leader_is_its_member_holding_the_manager_role(world: World) -> None:
    world.store.put_user(DirectoryUser(TENANT, "u-lead", "组长", department_id="d-team1", roles=("manager",)))
    world.uc.create(
        ADMIN,
        {
            "name": "告知部门负责人",
            "form": "customer",
            "trigger": {"type": "record_created"},
            "actions": [
                {
                    "type": "notify",
                    "recipients": [{"type": "department_leader", "department": "d-team1"}],
                    "title": "新客户 {客户名称}",
                }
            ],
        },
    )
    world.engine.handle_event(world.records.add(TENANT, "customer", {"customer_name": "华信"}, owner_id=SALES[0]))
    notes, _, _ = world.uc.notifications(type(ADMIN)(tenant_id=TENANT, user_id="u-lead"))
    assert [n["title"] for n in notes] == ["新客户 华信"]
    assert world.uc.notifications(type(ADMIN)(tenant_id=TENANT, user_id=SALES[1]))[0] == []
