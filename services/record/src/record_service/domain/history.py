"""GetRecordHistory: who changed what, when, from what to what — one record's audit trail, newest first.

Every write leaves one history entry per event in the same transaction (the
entry is also the outbox document, events/); a bulk create leaves one entry per
BATCH_ENTRY records, expanded here to one entry per record (events.entries_of).
A hidden field's old and new values are not shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import RecordCore, field_label, iso
from record_service.events import entries_of

Doc = dict[str, Any]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class History:
    """GetRecordHistory."""

    def __init__(self, core: RecordCore) -> None:
        self.core = core

    def page(self, principal: Principal, record_id: str, cursor: str = "", page_size: int = 0) -> tuple[list, str]:
        """History entries of a visible (live or deleted) record, newest first; (entries, next_cursor)."""
        loaded = self.core.load(principal, record_id, deleted=None)
        size = page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise rerr.invalid("page_size", "invalid_page_size", principal.locale, max=MAX_PAGE_SIZE)
        before: tuple[datetime, str] | None = None
        if cursor:
            before = _decode_history_cursor(cursor, principal.locale)
        stored = self.core.repo.history_page(principal.tenant_id, record_id, before[0] if before else None, size + 50)
        rows = [e for doc in stored for e in entries_of(doc, [record_id])]
        rows.sort(key=lambda r: (r["at"], r["_id"]), reverse=True)
        if before is not None:
            rows = [r for r in rows if (r["at"], r["_id"]) < before]
        page, more = rows[:size], len(rows) > size
        form = loaded.form
        hidden = loaded.access.hidden if loaded.access is not None else frozenset()
        entries = []
        for row in page:
            changes = []
            for change in row.get("changes") or []:
                if str(change.get("field")) in hidden:
                    continue  # a hidden field's old and new values are not shown
                definition = form.field(str(change.get("field")))
                label = field_label(definition, principal.locale) if definition else None
                changes.append({**change, "label": label})
            entries.append(
                {
                    "id": row["_id"],
                    "record_id": row["record_id"],
                    "form_id": row.get("form_id"),
                    "action": row["action"],
                    "actor": row.get("actor"),
                    "actor_name": row.get("actor_name") or "",
                    "at": iso(row.get("at")),
                    "changes": changes,
                    "event_type": f"record.{row['action']}",
                }
            )
        next_cursor = _encode_history_cursor(page[-1]["at"], page[-1]["_id"]) if more and page else ""
        return entries, next_cursor


def _encode_history_cursor(at: datetime, entry_id: str) -> str:
    raw = json.dumps([iso(at), entry_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_history_cursor(text: str, locale: str) -> tuple[datetime, str]:
    try:
        at, entry_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return datetime.fromisoformat(str(at).replace("Z", "+00:00")), str(entry_id)
    except (ValueError, TypeError, binascii.Error):
        raise rerr.invalid("cursor", "invalid_cursor", locale) from None
