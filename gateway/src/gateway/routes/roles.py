"""The fixed roles and the data scope each one has in the services."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response

from gateway.auth import auth as token_auth
from gateway.i18n import current_locale
from gateway.responses import json_response
from gateway.schemas import RoleListOut
from gateway.users import ROLE_NAMES, ROLE_SCOPES

bp = APIBlueprint("roles", __name__, tag={"name": "Roles", "description": "Roles and their data scope"})

_SCOPE_KEYS = {"admin": "all", "manager": "department_subtree", "sales": "own"}


@bp.get("/roles")
@bp.auth_required(token_auth)
@bp.output(RoleListOut)
@bp.doc(summary="List roles with their data scope")
def list_roles() -> Response:
    """admin: all data; manager: their department subtree; sales: own records."""
    locale = current_locale()
    items = [
        {
            "key": key,
            "name": ROLE_NAMES[key][locale],
            "data_scope": _SCOPE_KEYS[key],
            "description": ROLE_SCOPES[key][locale],
        }
        for key in ("admin", "manager", "sales")
    ]
    return json_response({"items": items})
