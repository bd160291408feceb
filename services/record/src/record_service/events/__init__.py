"""Events of the record service: exchange `record.events`, routing key = event type (nameko style).

Every write stores one history entry per event in the same transaction as the
record; the entry IS the outbox document (`event` holds the envelope,
`published: False` until crm_runtime's OutboxRelay has published it with
confirms). Payloads:

    record.created        {record_id, form_id, form_version, owner_id, department_id, data}
    record.updated        {record_id, form_id, version, owner_id, department_id, changes: {key: {old, new}}}
    record.deleted        {record_id, form_id, version, owner_id, department_id}
    record.restored       {record_id, form_id, version, owner_id, department_id}
    record.owner_changed  {record_id, form_id, version, old_owner_id, new_owner_id, department_id}
    record.shared         {record_id, form_id, version, owner_id, department_id, share: {kind, id, access}}
    record.unshared       {record_id, form_id, version, owner_id, department_id, share: {kind, id}}
    record.merged         {record_id, form_id, winner_id, loser_id, repointed, version, owner_id, department_id,
                           changes} (extras/merge.py; the loser gets record.deleted with merged_into, each
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

ACTIONS = {
    RECORD_CREATED: "created",
    RECORD_UPDATED: "updated",
    RECORD_DELETED: "deleted",
    RECORD_RESTORED: "restored",
    RECORD_OWNER_CHANGED: "owner_changed",
    RECORD_SHARED: "shared",
    RECORD_UNSHARED: "unshared",
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
