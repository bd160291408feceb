"""Events are a contract: what the record service puts on the wire parses into proto/crm/events/v1/events.proto.

Each envelope is built the way the record service builds it
(`RecordCore.history_entry` -> `record_service.events.history_document`,
with the payload each use case passes: see domain/records.py, bulk.py,
sharing.py and merge.py), encoded exactly as the relay publishes it
(`crm_runtime.envelope.encode_envelope`), decoded as a consumer does, and
parsed with `json_format.ParseDict(..., ignore_unknown_fields=False)`: a key on
the wire that the proto does not declare fails, as does a value of the wrong
JSON type.

It lives beside the runtime because the envelope builder and the relay are
the runtime's; the payloads are the record service's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from crm.events.v1 import events_pb2
from crm_runtime.envelope import encode_envelope
from crm_runtime.principal import Principal
from record_service import events
from record_service.domain.core import RecordCore
from record_service.domain.merge import MERGED_ACTION, RECORD_MERGED

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
PRINCIPAL = Principal(tenant_id="t-1", user_id="u-1", user_name="张三", department_id="d-1")
# API outputs of a mix of field types (text, number, select, tags, an address object, a date, an empty value)
DATA = {
    "name": "华信科技",
    "amount": 1250.5,
    "headcount": 42,
    "level": "A",
    "tags": ["vip", "华南"],
    "address": {"province": "广东省", "city": "深圳市", "detail": "南山区科技园"},
    "signed_on": "2026-12-03",
    "note": None,
}


def _doc(**over: Any) -> dict[str, Any]:
    doc = {"_id": "r-1", "form_id": "f-cust", "owner_id": "u-1", "department_id": "d-1", "version": 2}
    return {**doc, **over}


def _entry(event_type: str, doc: dict[str, Any], changes: list[dict[str, Any]], data: dict[str, Any]) -> Any:
    # history_entry uses no state of the service: a bare instance builds the entry as every use case does
    core = RecordCore.__new__(RecordCore)
    return core.history_entry(event_type, PRINCIPAL, doc, AT, changes, data)


def _changes(pairs: dict[str, tuple[Any, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    history = [{"field": k, "old": old, "new": new} for k, (old, new) in pairs.items()]
    return history, {c["field"]: {"old": c["old"], "new": c["new"]} for c in history}


def _entries() -> list[dict[str, Any]]:
    """One history entry per record event type, with the payloads the record service writes."""
    out: list[dict[str, Any]] = []
    # records.create / bulk.bulk_create
    out.append(
        _entry(
            events.RECORD_CREATED,
            _doc(version=1),
            [{"field": k, "old": None, "new": v} for k, v in DATA.items()],
            {"form_version": 3, "owner_id": "u-1", "data": DATA},
        )
    )
    # records.update: changed fields, and a new owner in the same write
    history, changes = _changes({"level": ("A", "B"), "tags": (["vip"], []), "note": (None, "回访")})
    after = _doc(version=3, owner_id="u-2", department_id=None)
    out.append(_entry(events.RECORD_UPDATED, after, history, {"version": 3, "changes": changes}))
    out.append(
        _entry(
            events.RECORD_OWNER_CHANGED,
            after,
            [{"field": "owner_id", "old": "u-1", "new": "u-2"}],
            {"version": 3, "old_owner_id": "u-1", "new_owner_id": "u-2"},
        )
    )
    # records.delete / restore
    deleted = [{"field": "deleted", "old": False, "new": True}]
    out.append(_entry(events.RECORD_DELETED, _doc(version=4), deleted, {"version": 4}))
    restored = [{"field": "deleted", "old": True, "new": False}]
    out.append(_entry(events.RECORD_RESTORED, _doc(version=5), restored, {"version": 5}))
    # sharing.share / unshare
    share = {"kind": "user", "id": "u-3", "access": "edit"}
    shared = [{"field": "shares", "old": None, "new": "edit", "target": "user:u-3"}]
    out.append(_entry(events.RECORD_SHARED, _doc(version=6), shared, {"version": 6, "share": share}))
    unshared = [{"field": "shares", "old": "edit", "new": None, "target": "user:u-3"}]
    out.append(
        _entry(
            events.RECORD_UNSHARED, _doc(version=7), unshared, {"version": 7, "share": {"kind": "user", "id": "u-3"}}
        )
    )
    # domain/records.py + approval_gate.py: a guarded change held for approval, then dropped
    history, changes = _changes({"stage": ("proposal", "negotiation")})
    out.append(
        _entry(
            events.RECORD_CHANGE_HELD,
            _doc(version=9),
            history,
            {
                "version": 9,
                "change_id": "c-1",
                "guard_id": "g-1",
                "guard_owner": "approval:p-1",
                "changes": changes,
                "requested_by": "u-1",
            },
        )
    )
    out.append(
        _entry(
            events.RECORD_CHANGE_DROPPED,
            _doc(version=10),
            [{"field": "stage", "old": None, "new": "negotiation"}],
            {"version": 10, "change_id": "c-1", "reason": "折扣过高", "changes": {"stage": "negotiation"}},
        )
    )
    # domain/merge.py: the winner (built as an update, then renamed), the loser, a re-pointed record
    history, changes = _changes({"mobile": (None, "13800138000")})
    winner = _entry(
        events.RECORD_UPDATED,
        _doc(version=8),
        [*history, {"field": "merged_from", "old": None, "new": "r-2"}],
        {"winner_id": "r-1", "loser_id": "r-2", "repointed": 1, "version": 8, "changes": changes},
    )
    winner["action"] = MERGED_ACTION
    winner[events.ENVELOPE_FIELD]["type"] = RECORD_MERGED
    out.append(winner)
    loser = _entry(
        events.RECORD_DELETED,
        _doc(_id="r-2", version=3),
        [{"field": "deleted", "old": False, "new": True}, {"field": "merged_into", "old": None, "new": "r-1"}],
        {"version": 3, "merged_into": "r-1"},
    )
    loser["action"] = MERGED_ACTION
    out.append(loser)
    history, changes = _changes({"customer": ("r-2", "r-1")})
    out.append(
        _entry(
            events.RECORD_UPDATED,
            _doc(_id="r-9", form_id="f-contact", version=2),
            history,
            {"version": 2, "changes": changes, "merged_from": "r-2", "merged_into": "r-1"},
        )
    )
    return out


def _payload_message(event_type: str) -> Message:
    """record.owner_changed -> crm.events.v1.RecordOwnerChanged."""
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    cls = getattr(events_pb2, name, None)
    assert cls is not None, f"{event_type}: no message crm.events.v1.{name} in proto/crm/events/v1/events.proto"
    return cls()


def _on_the_wire(entry: dict[str, Any]) -> dict[str, Any]:
    """The envelope as a consumer reads it: the body the relay publishes, decoded."""
    decoded: dict[str, Any] = json.loads(encode_envelope(entry[events.ENVELOPE_FIELD]))
    return decoded


ENTRIES = _entries()


def test_every_record_event_type_has_a_payload_message_and_a_sample() -> None:
    types = {*events.ACTIONS, RECORD_MERGED}
    assert {e[events.ENVELOPE_FIELD]["type"] for e in ENTRIES} == types
    for event_type in types:
        _payload_message(event_type)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: str(e[events.ENVELOPE_FIELD]["type"]))
def test_the_wire_envelope_parses_into_the_proto(entry: dict[str, Any]) -> None:
    wire = _on_the_wire(entry)
    envelope = json_format.ParseDict(wire, events_pb2.EventEnvelope(), ignore_unknown_fields=False)
    assert envelope.id == entry["_id"] and envelope.type == wire["type"]
    assert envelope.tenant_id == "t-1" and envelope.source == "record" and envelope.actor == "u-1"
    assert datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00")).tzinfo is not None
    # the proto's JSON form of the envelope is the wire form (same keys, same values)
    assert json_format.MessageToDict(envelope, preserving_proto_field_name=False) == wire
    payload = json_format.ParseDict(wire["data"], _payload_message(wire["type"]), ignore_unknown_fields=False)
    # every value survives the proto (a JSON null reads as unset, so it comes back absent)
    present = {k: v for k, v in wire["data"].items() if v is not None}
    assert json_format.MessageToDict(payload) == present
    assert present["record_id"] == entry["record_id"] and present["form_id"] == entry["form_id"]


def test_payload_values_survive_the_proto() -> None:
    created = _on_the_wire(ENTRIES[0])["data"]
    msg = json_format.ParseDict(created, events_pb2.RecordCreated(), ignore_unknown_fields=False)
    assert msg.form_version == 3 and msg.owner_id == "u-1" and msg.department_id == "d-1"
    assert json_format.MessageToDict(msg.data) == DATA
    updated = json_format.ParseDict(_on_the_wire(ENTRIES[1])["data"], events_pb2.RecordUpdated())
    assert updated.version == 3 and set(updated.changes) == {"level", "tags", "note"}
    assert json_format.MessageToDict(updated.changes["note"]) == {"old": None, "new": "回访"}
    assert updated.owner_id == "u-2" and updated.department_id == ""  # JSON null reads as unset


def test_a_key_the_proto_does_not_declare_is_refused() -> None:
    wire = _on_the_wire(ENTRIES[0])
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({**wire, "trace_id": "x"}, events_pb2.EventEnvelope(), ignore_unknown_fields=False)
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({**wire["data"], "stage": "won"}, events_pb2.RecordCreated())
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({**wire["data"], "form_version": "three"}, events_pb2.RecordCreated())
