"""Apps, forms, field types and templates: proxied to crm.form.v1.FormService."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response

from crm.form.v1 import form_pb2
from gateway.audit import audited
from gateway.auth import auth as token_auth
from gateway.responses import dumps, json_response, parse
from gateway.routes._proxy import form_call
from gateway.schemas import AppIn, FieldTypeOut, FreeObject, InstallOut, ListOut, PublishedQuery, PublishOut

bp = APIBlueprint(
    "forms", __name__, tag={"name": "Forms", "description": "Apps, forms, field definitions, versions and templates"}
)


@bp.get("/apps")
@bp.auth_required(token_auth)
@bp.output(ListOut)
@bp.doc(summary="List apps", tags=["Apps"])
def list_apps() -> Response:
    """Apps of the tenant."""
    resp = form_call("ListApps", form_pb2.ListAppsRequest())
    return json_response({"items": [parse(a) for a in resp.apps_json]})


@bp.post("/apps")
@bp.auth_required(token_auth)
@bp.input(AppIn, arg_name="body")
@bp.output(FreeObject, status_code=201)
@bp.doc(summary="Create an app", tags=["Apps"], responses=[201, 401, 403, 409, 422])
@audited("app.create", "app")
def create_app_route(body: dict[str, Any]) -> Response:
    """A new app."""
    req = form_pb2.CreateAppRequest(
        name_json=dumps(body["name"]), key=body.get("key", ""), description=body.get("description", "")
    )
    return json_response(parse(form_call("CreateApp", req).app_json), 201)


@bp.get("/apps/<app_id>/forms")
@bp.auth_required(token_auth)
@bp.output(ListOut)
@bp.doc(
    summary="List the forms of an app",
    description="Only forms the caller may view or manage (tenant admins: every form).",
    tags=["Apps"],
    responses=[200, 401, 404],
)
def list_forms(app_id: str) -> Response:
    """Forms of one app."""
    resp = form_call("ListForms", form_pb2.ListFormsRequest(app_id=app_id))
    return json_response({"items": [parse(f) for f in resp.forms_json]})


@bp.post("/apps/<app_id>/forms")
@bp.auth_required(token_auth)
@bp.input(FreeObject, arg_name="body", schema_name="FormSpec")
@bp.output(FreeObject, status_code=201)
@bp.doc(
    summary="Create a form",
    description='Body: {"key"?, "name": {...}, "fields": [...], "title_field"?} (see the field-definition format).',
    responses=[201, 401, 403, 409, 422],
)
@audited("form.create", "form")
def create_form(app_id: str, body: dict[str, Any]) -> Response:
    """A new form (draft) in an app."""
    resp = form_call("CreateForm", form_pb2.CreateFormRequest(app_id=app_id, form_json=dumps(body)))
    return json_response(parse(resp.form_json), 201)


@bp.get("/forms/<form>")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(
    summary="Get a form (id or key)",
    description="The draft plus the published version number; 404 for a form the caller may not view.",
    responses=[200, 401, 404],
)
def get_form(form: str) -> Response:
    """One form."""
    return json_response(parse(form_call("GetForm", form_pb2.GetFormRequest(form_id=form)).form_json))


@bp.patch("/forms/<form>")
@bp.auth_required(token_auth)
@bp.input(FreeObject, arg_name="body", schema_name="FormPatch")
@bp.output(FreeObject)
@bp.doc(
    summary="Update a form draft",
    description="Partial: name, fields (whole list), title_field; `expected_revision` checks the draft revision. "
    "Tenant admins, or users with the `manage` action on the form.",
    responses=[200, 401, 403, 404, 409, 422],
)
@audited("form.update", "form", id_arg="form")
def update_form(form: str, body: dict[str, Any]) -> Response:
    """Change the draft."""
    patch = dict(body)
    revision = patch.pop("expected_revision", 0) or 0
    req = form_pb2.UpdateFormRequest(form_id=form, form_json=dumps(patch), expected_revision=int(revision))
    return json_response(parse(form_call("UpdateForm", req).form_json))


@bp.post("/forms/<form>/publish")
@bp.auth_required(token_auth)
@bp.output(PublishOut)
@bp.doc(
    summary="Publish the draft as a new version",
    description="Tenant admins, or users with the `manage` action on the form.",
    responses=[200, 401, 403, 404, 422],
)
@audited("form.publish", "form", id_arg="form", result_keys=("version",))
def publish_form(form: str) -> Response:
    """Publish; returns the published form with its `version`."""
    resp = form_call("PublishForm", form_pb2.PublishFormRequest(form_id=form))
    body = parse(resp.form_json)
    if isinstance(body, dict):
        body.setdefault("version", resp.version)
    return json_response(body)


@bp.get("/forms/<form>/published")
@bp.auth_required(token_auth)
@bp.input(PublishedQuery, location="query", arg_name="query")
@bp.output(PublishOut)
@bp.doc(summary="Get a published form version", description="`version` 0 or absent: the latest.")
def get_published(form: str, query: dict[str, Any]) -> Response:
    """A published version."""
    resp = form_call("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id=form, version=query["version"]))
    body = parse(resp.form_json)
    if isinstance(body, dict):
        body.setdefault("version", resp.version)
    return json_response(body)


@bp.get("/field-types")
@bp.auth_required(token_auth)
@bp.output(FieldTypeOut(many=True))
@bp.doc(summary="The field-type catalogue")
def field_types() -> Response:
    """Every field type with its options."""
    return json_response(parse(form_call("ListFieldTypes", form_pb2.ListFieldTypesRequest()).field_types_json))


@bp.post("/templates/<template>/install")
@bp.auth_required(token_auth)
@bp.output(InstallOut)
@bp.doc(
    summary="Install an app template (e.g. crm)",
    description="Tenant admins. Idempotent: `created` is false when present.",
    responses=[200, 401, 403, 404],
)
@audited("template.install", "template", id_arg="template", result_keys=("created",))
def install_template(template: str) -> Response:
    """Install a built-in template."""
    resp = form_call("InstallTemplate", form_pb2.InstallTemplateRequest(template=template))
    return json_response({"app": parse(resp.app_json), "created": resp.created})
