"""Filter trees past their bounds are refused with a 422 naming the limit, before any backend call."""

from __future__ import annotations

import json
from typing import Any


def _nested(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"field": "level", "op": "eq", "value": "A"}
    for _ in range(depth - 1):
        tree = {"and": [tree]}
    return tree


def test_deep_wide_and_huge_filters(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    headers = helpers.bearer(admin_token, "en")
    deep = client.get(
        "/api/v1/forms/customer/records", query_string={"filter": json.dumps(_nested(300))}, headers=headers
    )
    assert deep.status_code == 422
    assert deep.get_json()["errors"][0] == {
        "field": "filter",
        "rule": "filter_too_deep",
        "message": "The filter is nested too deeply (at most 8 levels)",
    }
    wide = {"or": [{"field": "level", "op": "eq", "value": str(i)} for i in range(1000)]}
    resp = client.post("/api/v1/forms/customer/records/query", json={"filter": wide}, headers=headers)
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["rule"] == "filter_too_wide"
    # nesting deep enough to exhaust a recursive JSON parser: a 400 or 422, never a 500
    text = '{"and": [' * 20_000 + "{}" + "]}" * 20_000
    resp = client.get("/api/v1/forms/customer/records", query_string={"filter": text}, headers=headers)
    assert resp.status_code in (400, 422), resp.status_code
    resp = client.post(
        "/api/v1/forms/customer/records/query",
        data='{"filter": ' + text + "}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code in (400, 422), resp.status_code
    # none of these reached the record service
    assert not any(name == "ListRecords" for name, *_ in record_service.calls)
