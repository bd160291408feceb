"""The operation log's pure parts: canonical form, hash, redaction and the client address."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from flask import Flask

from gateway.audit import (
    DETAILS_MAX,
    GENESIS,
    REDACTED,
    AuditQuery,
    canonical_json,
    client_address,
    details_text,
    entry_hash,
    format_at,
    redact,
)


def _entry(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "_id": "e1",
        "tenant_id": "default",
        "seq": 1,
        "at": datetime(2026, 12, 2, 6, 46, 21, 123456, tzinfo=UTC),
        "actor_id": "u1",
        "actor_name": "张三",
        "action": "user.update",
        "object_type": "user",
        "object_id": "u2",
        "summary": "李四",
        "details": "{}",
        "address": "10.0.0.1",
        "user_agent": "ua",
        "request_id": "r1",
        "prev_hash": GENESIS,
    }
    base.update(over)
    return base


def test_format_at_is_utc_milliseconds() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert format_at(datetime(2026, 12, 2, 14, 46, 21, 123999, tzinfo=shanghai)) == "2026-12-02T06:46:21.123Z"
    assert format_at(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"  # naive = UTC


def test_canonical_json_sorts_keys_and_keeps_chinese() -> None:
    assert canonical_json({"b": 1, "a": {"d": "值", "c": [1, 2]}}) == '{"a":{"c":[1,2],"d":"值"},"b":1}'


def test_hash_covers_every_field_but_not_microseconds_the_store_drops() -> None:
    entry = _entry()
    digest = entry_hash(entry)
    assert len(digest) == 64 and entry_hash({**entry, "hash": "anything"}) == digest
    stored = {**entry, "at": datetime(2026, 12, 2, 6, 46, 21, 123000, tzinfo=UTC)}
    assert entry_hash(stored) == digest
    for key, value in (("summary", "王五"), ("seq", 2), ("prev_hash", "1" * 64), ("details", '{"a":1}')):
        assert entry_hash({**entry, key: value}) != digest, key
    assert entry_hash({**entry, "at": entry["at"] + timedelta(milliseconds=1)}) != digest  # type: ignore[operator]


def test_redact_replaces_secrets_at_any_depth() -> None:
    out = redact(
        {
            "password": "p",
            "new_password": "p2",
            "totp_secret": "s",
            "tokens": ["a"],
            "nested": [{"refresh_token": "t", "name": "x"}],
            "changed": ["password", "name"],
            "empty_password": "",
            "at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )
    assert out == {
        "password": REDACTED,
        "new_password": REDACTED,
        "totp_secret": REDACTED,
        "tokens": REDACTED,
        "nested": [{"refresh_token": REDACTED, "name": "x"}],
        "changed": ["password", "name"],  # names of changed fields are not secrets
        "empty_password": "",
        "at": "2026-01-01T00:00:00.000Z",
    }


def test_details_are_capped_keeping_what_is_small() -> None:
    assert json.loads(details_text({"x": 1})) == {"x": 1}
    text = details_text({"name": "客户", "changes": {"fields": [{"key": f"f{i}"} for i in range(2000)], "key": "c"}})
    assert len(text.encode("utf-8")) <= DETAILS_MAX
    shrunk = json.loads(text)
    assert shrunk["name"] == "客户" and shrunk["changes"]["key"] == "c"
    assert shrunk["changes"]["fields"]["truncated"] is True and shrunk["changes"]["fields"]["items"] == 2000
    long = json.loads(details_text({"note": "长" * DETAILS_MAX}))
    assert long["note"].endswith("…") and len(long["note"]) < DETAILS_MAX


def test_query_to_json_names_only_set_filters() -> None:
    q = AuditQuery(action="user.update", since=datetime(2026, 1, 1, tzinfo=UTC))
    assert q.to_json() == {"action": "user.update", "from": "2026-01-01T00:00:00.000Z"}


def test_client_address_believes_forwarded_for_only_for_trusted_proxies() -> None:
    app = Flask("t")
    environ = {"REMOTE_ADDR": "10.0.0.9"}
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.0.0.2"}
    with app.test_request_context(headers=headers, environ_base=environ):
        assert client_address(0) == "10.0.0.9"
        assert client_address(1) == "10.0.0.2"
        assert client_address(2) == "203.0.113.7"
        assert client_address(5) == "198.51.100.1"
    with app.test_request_context(environ_base=environ):
        assert client_address(2) == "10.0.0.9"
