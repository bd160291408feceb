"""Events of the record service: exchange `record.events`, routing key = event type (nameko style).

Every write stores one history entry per event in the same transaction as the
record; the entry IS the outbox document (`event` holds the envelope,
`published: False` until crm_runtime's OutboxRelay has published it with
confirms). A bulk create stores one *batch entry* per BATCH_ENTRY records
instead (`record_id` is the list of its records, `batch` their payloads): one
document and one index entry a record rather than a document and three, so an
import writes what it must, not four times that. `entries_of` expands a batch
entry into the per-record entries, and `envelopes_of` into the per-record
events the relay publishes: the history a reader sees and the events on the
wire are exactly those of single writes. Payloads:

    record.created        {record_id, form_id, form_version, owner_id, department_id, data}
    record.updated        {record_id, form_id, version, owner_id, department_id, changes: {key: {old, new}}}
    record.deleted        {record_id, form_id, version, owner_id, department_id}
    record.restored       {record_id, form_id, version, owner_id, department_id}
    record.owner_changed  {record_id, form_id, version, old_owner_id, new_owner_id, department_id}
    record.shared         {record_id, form_id, version, owner_id, department_id, share: {kind, id, access}}
    record.unshared       {record_id, form_id, version, owner_id, department_id, share: {kind, id}}
    record.change_held    {record_id, form_id, version, owner_id, department_id, change_id, guard_id, guard_owner,
                           changes: {key: {old, new}}, requested_by} (a guarded change waits for approval)
    record.change_dropped {record_id, form_id, version, owner_id, department_id, change_id, reason, changes}
    record.merged         {record_id, form_id, winner_id, loser_id, repointed, version, owner_id, department_id,
                           changes} (domain/merge.py; the loser gets record.deleted with merged_into, each
                           re-pointed record record.updated with merged_from and merged_into)

The schema of the envelope and of each payload is proto/crm/events/v1/events.proto
(crm.events.v1.RecordCreated, ...), checked against envelopes built here by
services/runtime/tests/test_event_contract.py.

Values are API outputs (crm_schema.to_output, encrypted text masked).

Events carry the FULL data, hidden fields included: field-level access
(crm_runtime.access.hidden_fields) is applied where data reaches a person,
and the consumers are services that apply the same function to their own
outputs (a report or an export drops the reader's hidden fields there). The
history entry that carries an envelope is filtered the same way when
GetRecordHistory or the 360° timeline shows it. A change of a user's
department (user.updated from the gateway) rewrites the department and acl of
the records they own without an event: it is not a record change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_runtime.envelope import make_envelope

BATCH_ENTRY = 200  # records per batch entry of a bulk create (a document of ~0.3 MB for a 16-field form)

SOURCE = "record"
EXCHANGE = "record.events"
ENVELOPE_FIELD = "event"

RECORD_CREATED = "record.created"
RECORD_UPDATED = "record.updated"
RECORD_DELETED = "record.deleted"
RECORD_RESTORED = "record.restored"
RECORD_OWNER_CHANGED = "record.owner_changed"
RECORD_SHARED = "record.shared"
RECORD_UNSHARED = "record.unshared"
RECORD_CHANGE_HELD = "record.change_held"
RECORD_CHANGE_DROPPED = "record.change_dropped"

ACTIONS = {
    RECORD_CREATED: "created",
    RECORD_UPDATED: "updated",
    RECORD_DELETED: "deleted",
    RECORD_RESTORED: "restored",
    RECORD_OWNER_CHANGED: "owner_changed",
    RECORD_SHARED: "shared",
    RECORD_UNSHARED: "unshared",
    RECORD_CHANGE_HELD: "change_held",
    RECORD_CHANGE_DROPPED: "change_dropped",
}


def history_document(
    event_type: str,
    *,
    tenant_id: str,
    record_id: str,
    form_id: str,
    actor: str,
    actor_name: str,
    at: datetime,
    changes: list[dict[str, Any]],
    data: dict[str, Any],
) -> dict[str, Any]:
    """One history entry carrying its event envelope (the outbox document)."""
    envelope = make_envelope(event_type, tenant_id, data, source=SOURCE, actor=actor)
    return {
        "_id": envelope["id"],
        "tenant_id": tenant_id,
        "record_id": record_id,
        "form_id": form_id,
        "action": ACTIONS[event_type],
        "actor": actor,
        "actor_name": actor_name,
        "at": at,
        "changes": changes,
        ENVELOPE_FIELD: envelope,
        "published": False,
    }


def batch_document(
    event_type: str,
    *,
    tenant_id: str,
    form_id: str,
    actor: str,
    actor_name: str,
    at: datetime,
    common: dict[str, Any],
    items: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """One history/outbox entry for the same event on many records of a form (a bulk create).

    `common` is the payload part every record shares (form_id, form_version,
    owner_id, department_id), `items` (record id, the rest of its payload).
    Each record keeps its own event id; `occurred_at` is shared.
    """
    head = make_envelope(event_type, tenant_id, {}, source=SOURCE, actor=actor)
    return {
        "_id": head["id"],
        "tenant_id": tenant_id,
        "record_id": [rid for rid, _ in items],
        "form_id": form_id,
        "action": ACTIONS[event_type],
        "actor": actor,
        "actor_name": actor_name,
        "at": at,
        "occurred_at": head["occurred_at"],
        "common": common,
        "batch": [
            {"id": make_envelope(event_type, tenant_id, {}, source=SOURCE)["id"], "record_id": rid, "data": d}
            for rid, d in items
        ],  # fmt: skip
        "published": False,
    }


def is_batch(doc: dict[str, Any]) -> bool:
    """True for a batch entry of batch_document."""
    return "batch" in doc


def _event_type(doc: dict[str, Any]) -> str:
    return f"record.{doc['action']}"


def _changes(event_type: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    if event_type == RECORD_CREATED:
        return [{"field": k, "old": None, "new": v} for k, v in (data.get("data") or {}).items()]
    return []


def entries_of(doc: dict[str, Any], record_ids: Any = None) -> list[dict[str, Any]]:
    """The per-record history entries of a stored entry (itself when it is not a batch), for `record_ids` only
    when given; each shaped as history_document makes it."""
    if not is_batch(doc):
        return [doc]
    wanted = set(record_ids) if record_ids is not None else None
    event_type = _event_type(doc)
    out = []
    for item in doc["batch"]:
        if wanted is not None and item["record_id"] not in wanted:
            continue
        payload = {"record_id": item["record_id"], **doc.get("common", {}), **item["data"]}
        out.append(
            {
                "_id": item["id"],
                "tenant_id": doc["tenant_id"],
                "record_id": item["record_id"],
                "form_id": doc.get("form_id"),
                "action": doc["action"],
                "actor": doc.get("actor"),
                "actor_name": doc.get("actor_name"),
                "at": doc["at"],
                "changes": _changes(event_type, payload),
                ENVELOPE_FIELD: _envelope(doc, item["id"], payload),
                "published": doc.get("published"),
            }
        )
    return out


def _envelope(doc: dict[str, Any], event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": _event_type(doc),
        "tenant_id": doc["tenant_id"],
        "occurred_at": doc["occurred_at"],
        "source": SOURCE,
        "actor": doc.get("actor"),
        "data": payload,
    }


def envelopes_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a stored outbox entry, in order: its envelope, or one per record of a batch entry."""
    if not is_batch(doc):
        return [doc[ENVELOPE_FIELD]]
    return [e[ENVELOPE_FIELD] for e in entries_of(doc)]
