"""Sharing routes: the REST body maps onto ShareRecord / UnshareRecord for the caller's principal."""

from __future__ import annotations

from typing import Any

from crm.record.v1 import record_pb2


def test_share_and_unshare_map_to_the_record_service(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    record_service.handlers["ShareRecord"] = lambda req, p: record_pb2.ShareRecordResponse(record_json='{"id": "r1"}')
    record_service.handlers["UnshareRecord"] = lambda req, p: record_pb2.UnshareRecordResponse(
        record_json='{"id": "r1"}'
    )
    resp = client.post(
        "/api/v1/records/r1/shares",
        json={"target_kind": "department", "target_id": "d9", "access": "edit"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 200 and resp.get_json() == {"id": "r1"}
    req, principal = record_service.last("ShareRecord")
    assert (req.record_id, req.target_kind, req.target_id, req.access) == (
        "r1",
        record_pb2.SHARE_TARGET_KIND_DEPARTMENT,
        "d9",
        record_pb2.SHARE_ACCESS_EDIT,
    )
    assert principal.tenant_id == "default"
    resp = client.post(
        "/api/v1/records/r1/shares",
        json={"target_kind": "user", "target_id": "u2"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 200
    assert record_service.last("ShareRecord")[0].access == record_pb2.SHARE_ACCESS_READ  # read by default
    resp = client.delete("/api/v1/records/r1/shares/user/u2", headers=helpers.bearer(admin_token))
    assert resp.status_code == 200
    req, _ = record_service.last("UnshareRecord")
    assert (req.target_kind, req.target_id) == (record_pb2.SHARE_TARGET_KIND_USER, "u2")


def test_share_input_is_validated_and_needs_a_token(client: Any, helpers: Any, admin_token: str) -> None:
    bad = client.post(
        "/api/v1/records/r1/shares",
        json={"target_kind": "group", "target_id": "x", "access": "own"},
        headers=helpers.bearer(admin_token, "en"),
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.get_json()["errors"]} >= {"target_kind", "access"}
    assert client.post("/api/v1/records/r1/shares", json={"target_kind": "user", "target_id": "u"}).status_code == 401
    assert client.delete("/api/v1/records/r1/shares/team/u2", headers=helpers.bearer(admin_token)).status_code == 404
