"""Records: proxied to crm.record.v1.RecordService."""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint
from flask import Response

import crm_schema
from crm.record.v1 import record_pb2
from crm_runtime.errors import FieldError, ValidationFailed
from gateway.audit import audit_import, audit_record_view
from gateway.auth import auth as token_auth
from gateway.context import gateway
from gateway.errors import ApiError
from gateway.i18n import current_locale, t
from gateway.request_body import too_deep
from gateway.responses import dumps, json_response, parse
from gateway.routes._proxy import record_call
from gateway.schemas import (
    BulkIn,
    BulkOut,
    DeleteQuery,
    DuplicatesIn,
    FreeObject,
    HistoryOut,
    ListOut,
    ListQuery,
    MergeIn,
    PageQuery,
    QueryIn,
    RecordIn,
    RecordListOut,
    RecordPatch,
    ShareIn,
    View360Query,
)

bp = APIBlueprint(
    "records",
    __name__,
    tag={"name": "Records", "description": "Records: CRUD, query, history, 360° view, dedupe and merge"},
)

_COUNT_MODES = {
    None: record_pb2.COUNT_MODE_CAPPED,
    "capped": record_pb2.COUNT_MODE_CAPPED,
    "exact": record_pb2.COUNT_MODE_EXACT,
    "none": record_pb2.COUNT_MODE_NONE,
}


def _bad_param(name: str) -> ApiError:
    return ApiError(
        400,
        "invalid_json_param",
        t("invalid_json_param", field=name),
        errors=[{"field": name, "rule": "json", "message": t("invalid_json_param", field=name)}],
    )


def sort_json(sort: Any) -> str:
    """The sort as the service expects: [{"field", "direction"}] from "-a,b", a JSON text or a list."""
    if sort is None or sort == "":
        return ""
    if isinstance(sort, str):
        text = sort.strip()
        if text.startswith("["):
            try:
                sort = json.loads(text)
            except ValueError:
                raise _bad_param("sort") from None
        else:
            sort = [
                {"field": part.lstrip("-+"), "direction": "desc" if part.startswith("-") else "asc"}
                for part in (p.strip() for p in text.split(","))
                if part.lstrip("-+")
            ]
    if not isinstance(sort, list):
        raise _bad_param("sort")
    return dumps(sort)


def filter_json(value: Any) -> str:
    """The filter tree as JSON text; a text parameter must parse, and the tree must be within bounds."""
    if value is None or value == "":
        return ""
    tree = value
    if isinstance(value, str):
        try:
            tree = json.loads(value)
        except RecursionError:
            # nested past the parser's recursion limit: far past the filter's depth limit
            raise too_deep("filter") from None
        except ValueError:
            raise _bad_param("filter") from None
    shape = crm_schema.filter_shape_problem(tree)
    if shape is not None:
        rule, params = shape
        text = crm_schema.message(rule, current_locale(), **params)
        raise ValidationFailed([FieldError("filter", rule, text)], text)
    return value if isinstance(value, str) else dumps(value)


def _list(form: str, params: dict[str, Any]) -> Response:
    req = record_pb2.ListRecordsRequest(
        form_id=form,
        filter_json=filter_json(params.get("filter")),
        sort_json=sort_json(params.get("sort")),
        cursor=params.get("cursor") or "",
        page_size=params.get("page_size") or 0,
        count_mode=_COUNT_MODES[params.get("count")],
        keyword=params.get("q") or "",
        deleted=bool(params.get("deleted")),
    )
    resp = record_call("ListRecords", req)
    total: int | None = resp.total if resp.total >= 0 else None
    display = None if total is None else (f"{total:,}+" if resp.total_capped else f"{total:,}")
    return json_response(
        {
            "items": [parse(r) for r in resp.records_json],
            "next_cursor": resp.next_cursor or None,
            "total": total,
            "total_display": display,
        }
    )


@bp.post("/forms/<form>/records")
@bp.auth_required(token_auth)
@bp.input(RecordIn, arg_name="body")
@bp.output(FreeObject, status_code=201)
@bp.doc(summary="Create a record", responses=[201, 401, 403, 404, 409, 422])
def create_record(form: str, body: dict[str, Any]) -> Response:
    """Validate against the published form and store."""
    req = record_pb2.CreateRecordRequest(form_id=form, data_json=dumps(body["data"]), owner_id=body.get("owner_id", ""))
    return json_response(parse(record_call("CreateRecord", req).record_json), 201)


@bp.post("/forms/<form>/records/bulk")
@bp.auth_required(token_auth)
@bp.input(BulkIn, arg_name="body")
@bp.output(BulkOut, status_code=201)
@bp.doc(
    summary="Create records in bulk (all or nothing)",
    description="Up to 10,000 records per request; this endpoint accepts bodies up to 32 MiB.",
    responses=[201, 401, 403, 404, 409, 413, 422],
)
@audit_import
def bulk_create(form: str, body: dict[str, Any]) -> Response:
    """Many records at once."""
    req = record_pb2.BulkCreateRecordsRequest(form_id=form, records_json=dumps(body["records"]))
    ids = list(record_call("BulkCreateRecords", req, gateway().settings.bulk_grpc_timeout).record_ids)
    return json_response({"ids": ids, "count": len(ids)}, 201)


@bp.get("/forms/<form>/records")
@bp.auth_required(token_auth)
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(RecordListOut)
@bp.doc(summary="List records", description="Filter tree (JSON), sort, cursor paging, count mode and keyword.")
def list_records(form: str, query: dict[str, Any]) -> Response:
    """A page of records."""
    return _list(form, query)


@bp.post("/forms/<form>/records/query")
@bp.auth_required(token_auth)
@bp.input(QueryIn, arg_name="body")
@bp.output(RecordListOut)
@bp.doc(summary="List records (parameters in the body)", description="Same as GET, for big filter trees.")
def query_records(form: str, body: dict[str, Any]) -> Response:
    """A page of records."""
    return _list(form, body)


@bp.get("/records/<record_id>")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(summary="Get a record", responses=[200, 401, 403, 404])
@audit_record_view
def get_record(record_id: str) -> Response:
    """One record."""
    return json_response(parse(record_call("GetRecord", record_pb2.GetRecordRequest(record_id=record_id)).record_json))


@bp.patch("/records/<record_id>")
@bp.auth_required(token_auth)
@bp.input(RecordPatch, arg_name="body")
@bp.output(FreeObject)
@bp.doc(
    summary="Update a record",
    description="Partial data plus the `version` read; a stale version is refused with 409.",
    responses=[200, 401, 403, 404, 409, 422],
)
def update_record(record_id: str, body: dict[str, Any]) -> Response:
    """Change fields and/or the owner."""
    req = record_pb2.UpdateRecordRequest(
        record_id=record_id,
        data_json=dumps(body["data"]),
        expected_version=body["version"],
        owner_id=body.get("owner_id", ""),
    )
    return json_response(parse(record_call("UpdateRecord", req).record_json))


@bp.delete("/records/<record_id>")
@bp.auth_required(token_auth)
@bp.input(DeleteQuery, location="query", arg_name="query")
@bp.output(FreeObject)
@bp.doc(summary="Delete a record (to the recycle bin)", responses=[200, 401, 403, 404, 409])
def delete_record(record_id: str, query: dict[str, Any]) -> Response:
    """Soft delete; `version` optional."""
    req = record_pb2.DeleteRecordRequest(record_id=record_id, expected_version=query.get("version") or 0)
    return json_response(parse(record_call("DeleteRecord", req).record_json))


@bp.post("/records/<record_id>/restore")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(summary="Restore a deleted record", responses=[200, 401, 403, 404, 409])
def restore_record(record_id: str) -> Response:
    """Bring a record back from the recycle bin."""
    resp = record_call("RestoreRecord", record_pb2.RestoreRecordRequest(record_id=record_id))
    return json_response(parse(resp.record_json))


@bp.get("/records/<record_id>/history")
@bp.auth_required(token_auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(HistoryOut)
@bp.doc(summary="Change history of a record")
def record_history(record_id: str, query: dict[str, Any]) -> Response:
    """Audit entries, newest first."""
    req = record_pb2.GetRecordHistoryRequest(
        record_id=record_id, cursor=query.get("cursor", ""), page_size=query.get("page_size", 0)
    )
    resp = record_call("GetRecordHistory", req)
    return json_response({"items": [parse(e) for e in resp.entries_json], "next_cursor": resp.next_cursor or None})


@bp.get("/records/<record_id>/360")
@bp.auth_required(token_auth)
@bp.input(View360Query, location="query", arg_name="query")
@bp.output(FreeObject)
@bp.doc(summary="360° view of a record", description="The record with its related records and timeline.")
def record_360(record_id: str, query: dict[str, Any]) -> Response:
    """Everything about one customer."""
    req = record_pb2.GetRecord360Request(record_id=record_id, per_form_limit=query.get("per_form_limit", 0))
    return json_response(parse(record_call("GetRecord360", req).view_json))


@bp.post("/forms/<form>/duplicates")
@bp.auth_required(token_auth)
@bp.input(DuplicatesIn, arg_name="body")
@bp.output(ListOut)
@bp.doc(summary="Find duplicate candidates", description="Of a stored record (`record_id`) or of unsaved `data`.")
def find_duplicates(form: str, body: dict[str, Any]) -> Response:
    """Candidates with their match reasons."""
    req = record_pb2.FindDuplicatesRequest(
        form_id=form,
        record_id=body.get("record_id", ""),
        data_json=dumps(body["data"]) if "data" in body else "",
        limit=body.get("limit", 0),
    )
    return json_response({"items": [parse(c) for c in record_call("FindDuplicates", req).candidates_json]})


_SHARE_KINDS = {
    "user": record_pb2.SHARE_TARGET_KIND_USER,
    "department": record_pb2.SHARE_TARGET_KIND_DEPARTMENT,
}
_SHARE_ACCESS = {"read": record_pb2.SHARE_ACCESS_READ, "edit": record_pb2.SHARE_ACCESS_EDIT}


@bp.post("/records/<record_id>/shares")
@bp.auth_required(token_auth)
@bp.input(ShareIn, arg_name="body")
@bp.output(FreeObject)
@bp.doc(
    summary="Share a record",
    description=(
        "With a user or a department, `read` or `edit`, whatever their roles' data scope. Needs edit access "
        "to the record (or `assign` with the record in scope). Sharing again with the same target replaces "
        "the earlier share."
    ),
    responses=[200, 401, 403, 404, 422],
)
def share_record(record_id: str, body: dict[str, Any]) -> Response:
    """The record with its new `shares`."""
    req = record_pb2.ShareRecordRequest(
        record_id=record_id,
        target_kind=_SHARE_KINDS[body["target_kind"]],
        target_id=body["target_id"],
        access=_SHARE_ACCESS[body["access"]],
    )
    return json_response(parse(record_call("ShareRecord", req).record_json))


@bp.delete("/records/<record_id>/shares/<any(user, department):kind>/<target_id>")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(summary="Stop sharing a record", responses=[200, 401, 403, 404])
def unshare_record(record_id: str, kind: str, target_id: str) -> Response:
    """The record without that share (unchanged when it was not shared with the target)."""
    req = record_pb2.UnshareRecordRequest(record_id=record_id, target_kind=_SHARE_KINDS[kind], target_id=target_id)
    return json_response(parse(record_call("UnshareRecord", req).record_json))


@bp.post("/records/merge")
@bp.auth_required(token_auth)
@bp.input(MergeIn, arg_name="body")
@bp.output(FreeObject)
@bp.doc(summary="Merge two records", responses=[200, 401, 403, 404, 409, 422])
def merge_records(body: dict[str, Any]) -> Response:
    """The loser is merged into the winner and deleted."""
    req = record_pb2.MergeRecordsRequest(
        winner_id=body["winner_id"], loser_id=body["loser_id"], field_choices_json=dumps(body["field_choices"])
    )
    return json_response(parse(record_call("MergeRecords", req).record_json))
