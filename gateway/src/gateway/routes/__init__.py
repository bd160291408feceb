"""REST routes, one blueprint per resource, all under /api/v1 (operations at the root)."""

from __future__ import annotations

from apiflask import APIFlask


def register_blueprints(app: APIFlask) -> None:
    """Attach every blueprint to `app`."""
    from gateway.routes import (
        approvals,
        apps_forms,
        attachments,
        auth,
        departments,
        ops,
        permissions,
        pools,
        records,
        roles,
        users,
        workflow,
    )

    for module in (auth, users, departments, roles, permissions, apps_forms, records, attachments, workflow, pools):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
    app.register_blueprint(approvals.bp, url_prefix="/api/v1")
    app.register_blueprint(ops.bp)
