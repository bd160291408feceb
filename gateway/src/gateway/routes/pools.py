"""Public pools (公海池): their definitions (crm.workflow.v1.PoolService) and the moves of records in and out
of them (crm.record.v1 MoveToPool / ClaimFromPool / AssignFromPool, ListRecords with pool_id).

Who may do what is decided by the services: pools are managed by tenant admins; a pool's records are listed
and claimed by its members, assigned by its admins; a record is returned by its owner (with a reason).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Integer, List, String
from apiflask.validators import Length, OneOf, Range
from flask import Response
from marshmallow import EXCLUDE, INCLUDE

from crm.record.v1 import record_pb2
from crm.workflow.v1 import pool_pb2, workflow_pb2
from gateway.auth import auth as token_auth
from gateway.auth import current_principal, require_admin
from gateway.context import gateway
from gateway.responses import dumps, json_response, parse
from gateway.routes.records import _COUNT_MODES, filter_json, sort_json
from gateway.schemas import INT64_MAX, FreeObject, RecordListOut

bp = APIBlueprint(
    "pools",
    __name__,
    tag={"name": "Public pool", "description": "公海池: pools of records without an owner, claimed by their members"},
)

POOL_EXAMPLE = {
    "name": "华南公海",
    "form": "customer",
    "members": {"departments": ["<销售一组 id>"], "users": []},
    "admins": ["<销售经理 id>"],
    "max_owned_per_user": 200,
    "max_claims_per_day": 20,
    "cooldown_days": 7,
    "recycle": {
        "after_days": 30,
        "days_by": {"field": "level", "days": {"A": 60}},
        "warn_days": 3,
        "activity": [{"form": "follow_up", "field": "customer"}],
        "exempt": [
            {"form": "opportunity", "field": "customer", "condition": {"field": "stage", "op": "eq", "value": "won"}}
        ],
        "entered_at_field": "pool_entered_at",
    },
}
_RECYCLE_DOC = {
    "description": "after_days (or days_by a field's value) without a new related record of an `activity` form, "
    "unless an `exempt` related record exists; warn_days before, the owner is warned; entered_at_field is stamped"
}


class PoolIn(Schema):
    """A new pool."""

    class Meta:
        unknown = EXCLUDE

    name = String(required=True, validate=Length(1, 100))
    form = String(required=True, validate=Length(1, 200), metadata={"description": "form id or key"})
    enabled = Boolean()
    members = Dict(required=True, metadata={"description": "{users: [ids], departments: [ids]}"})
    admins = List(String(validate=Length(1, 100)), validate=Length(max=200))
    max_owned_per_user = Integer(validate=Range(0, 1_000_000))
    max_owned_per_department = Integer(validate=Range(0, 10_000_000))
    max_claims_per_day = Integer(validate=Range(0, 100_000))
    cooldown_days = Integer(validate=Range(0, 3650))
    recycle = Dict(metadata=_RECYCLE_DOC)


class PoolPatch(Schema):
    """A partial change naming the version read."""

    class Meta:
        unknown = EXCLUDE

    name = String(validate=Length(1, 100))
    enabled = Boolean()
    members = Dict()
    admins = List(String(validate=Length(1, 100)), validate=Length(max=200))
    max_owned_per_user = Integer(validate=Range(0, 1_000_000))
    max_owned_per_department = Integer(validate=Range(0, 10_000_000))
    max_claims_per_day = Integer(validate=Range(0, 100_000))
    cooldown_days = Integer(validate=Range(0, 3650))
    recycle = Dict(metadata=_RECYCLE_DOC)
    expected_version = Integer(required=True, validate=Range(1, INT64_MAX))


class PoolOut(Schema):
    """A pool."""

    class Meta:
        unknown = INCLUDE

    id = String()
    name = String()
    form_id = String()
    version = Integer()
    enabled = Boolean()


class PoolListOut(Schema):
    """Pools."""

    items = List(Dict())


class PoolQuery(Schema):
    """Pools of one form (id or key), or of the tenant."""

    class Meta:
        unknown = EXCLUDE

    form_id = String(validate=Length(max=200))


class VersionQuery(Schema):
    """The version read."""

    class Meta:
        unknown = EXCLUDE

    expected_version = Integer(required=True, validate=Range(1, INT64_MAX))


class PoolRecordsQuery(Schema):
    """A page of a pool's records."""

    class Meta:
        unknown = EXCLUDE

    filter = String()
    sort = String()
    cursor = String()
    page_size = Integer(validate=Range(1, 200))
    count = String(validate=OneOf(["capped", "exact", "none"]))
    q = String()


class ReturnIn(Schema):
    """Return a record to a pool."""

    pool_id = String(required=True, validate=Length(1, 100))
    reason = String(required=True, validate=Length(1, 500))


class AssignIn(Schema):
    """Give a pool record to a user."""

    owner_id = String(required=True, validate=Length(1, 100))


def pool_call(method: str, request: Any) -> Any:
    """A PoolService RPC as the current principal."""
    return gateway().services.pool.unary(method, request, current_principal())


def record_call(method: str, request: Any) -> Any:
    """A RecordService RPC as the current principal."""
    return gateway().services.record.unary(method, request, current_principal())


@bp.get("/pools")
@bp.auth_required(token_auth)
@bp.input(PoolQuery, location="query", arg_name="query")
@bp.output(PoolListOut)
@bp.doc(summary="List public pools")
def list_pools(query: dict[str, Any]) -> Response:
    """Pools of a form or of the tenant."""
    resp = pool_call("ListPools", pool_pb2.ListPoolsRequest(form_id=query.get("form_id", "")))
    return json_response({"items": [parse(p) for p in resp.pools_json]})


@bp.post("/pools")
@bp.auth_required(token_auth)
@bp.input(PoolIn, arg_name="body", example=POOL_EXAMPLE)
@bp.output(PoolOut, status_code=201)
@bp.doc(summary="Create a public pool", responses=[201, 401, 403, 422])
def create_pool(body: dict[str, Any]) -> Response:
    """A new pool (tenant admins)."""
    resp = pool_call("CreatePool", pool_pb2.CreatePoolRequest(pool_json=dumps(body)))
    return json_response(parse(resp.pool_json), 201)


@bp.get("/pools/<pool_id>")
@bp.auth_required(token_auth)
@bp.output(PoolOut)
@bp.doc(summary="Get a public pool", responses=[200, 401, 404])
def get_pool(pool_id: str) -> Response:
    """One pool."""
    return json_response(parse(pool_call("GetPool", pool_pb2.GetPoolRequest(pool_id=pool_id)).pool_json))


@bp.patch("/pools/<pool_id>")
@bp.auth_required(token_auth)
@bp.input(PoolPatch, arg_name="body")
@bp.output(PoolOut)
@bp.doc(summary="Change a public pool", responses=[200, 401, 403, 404, 409, 422])
def update_pool(pool_id: str, body: dict[str, Any]) -> Response:
    """Change a pool (its form cannot change)."""
    version = body.pop("expected_version")
    req = pool_pb2.UpdatePoolRequest(pool_id=pool_id, pool_json=dumps(body), expected_version=version)
    return json_response(parse(pool_call("UpdatePool", req).pool_json))


@bp.delete("/pools/<pool_id>")
@bp.auth_required(token_auth)
@bp.input(VersionQuery, location="query", arg_name="query")
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a public pool", responses=[204, 401, 403, 404, 409])
def delete_pool(pool_id: str, query: dict[str, Any]) -> Response:
    """Delete a pool."""
    pool_call("DeletePool", pool_pb2.DeletePoolRequest(pool_id=pool_id, expected_version=query["expected_version"]))
    return Response(status=204)


@bp.get("/pools/<pool_id>/records")
@bp.auth_required(token_auth)
@bp.input(PoolRecordsQuery, location="query", arg_name="query")
@bp.output(RecordListOut)
@bp.doc(
    summary="List a pool's records", description="For the pool's members and admins.", responses=[200, 401, 404, 422]
)
def pool_records(pool_id: str, query: dict[str, Any]) -> Response:
    """A page of the records in a pool."""
    pool = parse(pool_call("GetPool", pool_pb2.GetPoolRequest(pool_id=pool_id)).pool_json)
    req = record_pb2.ListRecordsRequest(
        form_id=str(pool.get("form_id") or ""),
        pool_id=pool_id,
        filter_json=filter_json(query.get("filter")),
        sort_json=sort_json(query.get("sort")),
        cursor=query.get("cursor") or "",
        page_size=query.get("page_size") or 0,
        count_mode=_COUNT_MODES[query.get("count")],
        keyword=query.get("q") or "",
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


@bp.post("/records/<record_id>/return-to-pool")
@bp.auth_required(token_auth)
@bp.input(ReturnIn, arg_name="body")
@bp.output(FreeObject)
@bp.doc(summary="Return a record to a public pool", responses=[200, 401, 403, 404, 422, 423])
def return_to_pool(record_id: str, body: dict[str, Any]) -> Response:
    """The owner (or an admin) gives a record back to a pool, with a reason."""
    req = record_pb2.MoveToPoolRequest(record_id=record_id, pool_id=body["pool_id"], reason=body["reason"])
    return json_response(parse(record_call("MoveToPool", req).record_json))


@bp.post("/records/<record_id>/claim")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(summary="Claim a record from its public pool", responses=[200, 401, 403, 404, 422])
def claim(record_id: str) -> Response:
    """A member of the record's pool takes it (caps and cooldown apply)."""
    return json_response(
        parse(record_call("ClaimFromPool", record_pb2.ClaimFromPoolRequest(record_id=record_id)).record_json)
    )


@bp.post("/records/<record_id>/assign-from-pool")
@bp.auth_required(token_auth)
@bp.input(AssignIn, arg_name="body")
@bp.output(FreeObject)
@bp.doc(summary="Assign a pool record to a user", responses=[200, 401, 403, 404, 422])
def assign_from_pool(record_id: str, body: dict[str, Any]) -> Response:
    """A pool admin gives a record of the pool to a user."""
    req = record_pb2.AssignFromPoolRequest(record_id=record_id, owner_id=body["owner_id"])
    return json_response(parse(record_call("AssignFromPool", req).record_json))


class HandoverIn(Schema):
    """Who takes over a leaving user's records: a colleague, or a pool."""

    class Meta:
        unknown = EXCLUDE

    to_user_id = String(validate=Length(1, 100))
    pool_id = String(validate=Length(1, 100))
    deactivate = Boolean(load_default=True, metadata={"description": "deactivate the user first (default true)"})


@bp.post("/users/<user_id>/handover")
@bp.auth_required(token_auth)
@bp.input(HandoverIn, arg_name="body")
@bp.output(FreeObject, status_code=202)
@bp.doc(
    summary="Hand over a leaving user's records (离职交接)",
    description="Deactivates the user (unless `deactivate` is false), then starts one job that gives every record "
    "they own — and every user field naming them, e.g. a task's 负责人 — to `to_user_id`, or returns their records "
    "to `pool_id`. Poll GET /handovers/{id} for its progress.",
    responses=[202, 401, 403, 404, 409, 422],
)
def start_handover(user_id: str, body: dict[str, Any]) -> Response:
    """Deactivate a user and hand their records over."""
    principal = require_admin()
    if body.get("deactivate", True):
        gateway().users.update(principal.tenant_id, user_id, {"active": False}, actor=principal.user_id)
    req = workflow_pb2.StartHandoverRequest(
        user_id=user_id, to_user_id=body.get("to_user_id") or "", pool_id=body.get("pool_id") or ""
    )
    job = gateway().services.workflow.unary("StartHandover", req, current_principal())
    return json_response(parse(job.job_json), 202)


@bp.get("/handovers/<job_id>")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(summary="A handover job and its progress", responses=[200, 401, 404])
def get_handover(job_id: str) -> Response:
    """Progress of a handover."""
    job = gateway().services.workflow.unary(
        "GetHandover", workflow_pb2.GetHandoverRequest(job_id=job_id), current_principal()
    )
    return json_response(parse(job.job_json))
