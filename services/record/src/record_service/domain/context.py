"""RecordContext: crm_schema's ValidationContext for one call (locale, time zone, role, relations, crypto)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm_runtime.errors import NotFound
from record_service.domain.forms import FormSource
from record_service.domain.repository import AttachmentLookup, Cipher, RecordRepository

IN_CHUNK = 200
CanSee = Callable[[str, Mapping[str, Any]], bool]
"""(relation target form id or key, stored record) -> True when the caller may see that record."""


class RecordContext:
    """The context crm_schema validates and renders values in.

    Relation checks are batched: `prefetch_relations` checks many ids with a
    few chunked `$in` reads, then `missing_relations` answers from that cache
    (bulk create validates 10,000 rows without a store read per row). With
    `can_see`, a record the caller may not see counts as missing (the same
    422 as a wrong id: its existence does not leak).
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        locale: str,
        tz: ZoneInfo,
        now: datetime,
        role: str,
        repo: RecordRepository,
        forms: FormSource,
        cipher: Cipher,
        attachments: AttachmentLookup,
        can_see: CanSee | None = None,
        may_use_file: Callable[[str, Any], bool] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.locale = locale
        self.tz = tz
        self.now = now
        self.role = role
        self._repo = repo
        self._forms = forms
        self._cipher = cipher
        self._attachments = attachments
        self.can_see = can_see
        self.may_use_file = may_use_file
        self._form_ids: dict[str, str | None] = {}
        self._known: dict[str, set[str]] = {}
        self._absent: dict[str, set[str]] = {}

    def with_role(self, role: str) -> RecordContext:
        """A copy rendering for another role (history and events render masked: role "")."""
        clone = RecordContext(
            tenant_id=self.tenant_id,
            locale=self.locale,
            tz=self.tz,
            now=self.now,
            role=role,
            repo=self._repo,
            forms=self._forms,
            cipher=self._cipher,
            attachments=self._attachments,
            can_see=self.can_see,
            may_use_file=self.may_use_file,
        )
        clone._form_ids, clone._known, clone._absent = self._form_ids, self._known, self._absent
        return clone

    def form_id_of(self, ref: str) -> str | None:
        """The id of a form named by id or key; None when it has no published version."""
        if ref not in self._form_ids:
            try:
                self._form_ids[ref] = self._forms.get_published(self.tenant_id, ref).id
            except NotFound:
                self._form_ids[ref] = None
        return self._form_ids[ref]

    def prefetch_relations(self, form_ref: str, ids: Iterable[str]) -> None:
        """Check many relation ids at once (chunked reads by _id)."""
        form_id = self.form_id_of(form_ref)
        known = self._known.setdefault(form_ref, set())
        absent = self._absent.setdefault(form_ref, set())
        todo = sorted({i for i in ids if isinstance(i, str) and i and i not in known and i not in absent})
        # the visibility check may read any stored path (role conditions): whole records then
        projection = {"tenant_id": 1, "form_id": 1, "deleted": 1} if self.can_see is None else None
        for start in range(0, len(todo), IN_CHUNK):
            chunk = todo[start : start + IN_CHUNK]
            found = {
                d["_id"]
                for d in self._repo.get_many(chunk, projection)
                if form_id is not None
                and d.get("tenant_id") == self.tenant_id
                and d.get("form_id") == form_id
                and not d.get("deleted")
                and (self.can_see is None or self.can_see(form_ref, d))
            }
            known |= found
            absent |= set(chunk) - found

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        """Ids that are not live records of that form in this tenant."""
        self.prefetch_relations(form_id, ids)
        known = self._known.get(form_id, set())
        return {i for i in ids if i not in known}

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Metadata of the attachments that exist and that the caller may use (see `may_use_file`).

        A file is usable when the caller uploaded it or sees a record holding
        it; anyone else's file reads as missing, so it cannot be attached to a
        record of one's own and then downloaded.
        """
        found = self._attachments(self.tenant_id, ids)
        out: dict[str, dict[str, Any]] = {}
        for file_id, meta in found.items():
            uploader = meta.get("uploaded_by")
            if self.may_use_file is not None and not self.may_use_file(file_id, uploader):
                continue
            out[file_id] = {k: v for k, v in meta.items() if k != "uploaded_by"}
        return out

    def encrypt(self, plaintext: str) -> str:
        """Encrypt an encrypted_text value."""
        return self._cipher.encrypt(plaintext)

    def decrypt(self, token: str) -> str:
        """Decrypt an encrypted_text value."""
        return self._cipher.decrypt(token)


Clock = Callable[[], datetime]
