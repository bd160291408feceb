"""Filter trees past their bounds are refused with a 422 naming the limit, before any backend call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm.record.v1 import record_pb2


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


def _nested_text(depth: int) -> str:
    """A filter `depth` levels deep as JSON text (too deep for json.dumps to write)."""
    leaf = '{"field": "level", "op": "eq", "value": "A"}'
    return '{"and": [' * (depth - 1) + leaf + "]}" * (depth - 1)


TOO_DEEP_EN = {
    "field": "filter",
    "rule": "filter_too_deep",
    "message": "The filter is nested too deeply (at most 8 levels)",
}


@pytest.mark.parametrize("depth", [9, 40, 500, 20_000])
def test_a_filter_too_deep_in_a_query_body_is_the_same_422_at_any_depth(
    client: Any, helpers: Any, admin_token: str, record_service: Any, depth: int
) -> None:
    resp = client.post(
        "/api/v1/forms/customer/records/query",
        data='{"page_size": 10, "filter": ' + _nested_text(depth) + "}",
        headers={**helpers.bearer(admin_token, "en"), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    body = resp.get_json()
    assert resp.mimetype == "application/problem+json"
    assert body["code"] == "validation_failed" and body["errors"] == [TOO_DEEP_EN]
    assert body["detail"] == TOO_DEEP_EN["message"]
    assert not any(name == "ListRecords" for name, *_ in record_service.calls)


def test_a_filter_too_deep_for_the_parser_in_a_query_parameter_is_the_same_422(
    client: Any, helpers: Any, admin_token: str
) -> None:
    resp = client.get(
        "/api/v1/forms/customer/records",
        query_string={"filter": _nested_text(2_000)},
        headers=helpers.bearer(admin_token, "en"),
    )
    assert resp.status_code == 422 and resp.get_json()["errors"] == [TOO_DEEP_EN]


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/v1/forms/customer/records/query", '{"sort": ' + "[" * 65 + "]" * 65 + ', "filter": {"and": []}}'),
        ("/api/v1/forms/customer/records", '{"data": {"notes": ' + "[" * 2_000 + "]" * 2_000 + "}}"),
        ("/api/v1/forms/customer/records", "[" * 100 + "]" * 100),
    ],
    ids=["beside-the-filter", "inside-record-data", "the-body-itself"],
)
def test_a_body_nested_too_deeply_elsewhere_is_a_422_naming_the_body(
    client: Any, helpers: Any, admin_token: str, record_service: Any, path: str, payload: str
) -> None:
    resp = client.post(path, data=payload, headers={**helpers.bearer(admin_token), "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["errors"] == [
        {
            "field": "body",
            "rule": "max_depth",
            "message": "请求体嵌套过深（对象和数组至多 64 层）",
            "params": {"max": 64},
        }
    ]
    assert record_service.calls == []


def test_brackets_inside_strings_do_not_count_as_nesting(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    record_service.handlers["CreateRecord"] = lambda req, p: record_pb2.CreateRecordResponse(record_json=req.data_json)
    notes = "[" * 500 + '\\"{' * 100
    resp = client.post(
        "/api/v1/forms/customer/records",
        data='{"data": {"notes": "' + notes + '"}}',
        headers={**helpers.bearer(admin_token), "Content-Type": "application/json"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["notes"] == "[" * 500 + '"{' * 100
