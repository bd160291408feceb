"""FormServicer: the FormService RPCs, mapping JSON text to FormEngine calls and back.

Domain errors pass through untouched: crm_runtime's server interceptor turns
them into gRPC status codes with a JSON problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.principal import current_principal
from form_service.api.codec import dumps, parse_name, parse_object
from form_service.domain.errors import not_found
from form_service.domain.schema import field_types_catalogue
from form_service.domain.service import FormEngine
from form_service.templates import load_template

SERVICE_NAME = form_pb2.DESCRIPTOR.services_by_name["FormService"].full_name

TemplateLoader = Callable[[str], dict[str, Any] | None]


class FormServicer(form_pb2_grpc.FormServiceServicer):
    """Implements crm.form.v1.FormService over a FormEngine."""

    def __init__(self, engine: FormEngine, templates: TemplateLoader = load_template) -> None:
        self._engine = engine
        self._templates = templates

    def register(self, server: grpc.Server) -> None:
        """Add this servicer to a gRPC server (for crm_runtime.build_server)."""
        form_pb2_grpc.add_FormServiceServicer_to_server(self, server)

    def CreateApp(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Create an app."""
        app = self._engine.create_app(
            current_principal(), parse_name(request.name_json), request.key, request.description
        )
        return form_pb2.CreateAppResponse(app_json=dumps(app.to_json()))

    def ListApps(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Every app of the tenant."""
        apps = self._engine.list_apps(current_principal())
        return form_pb2.ListAppsResponse(apps_json=[dumps(a.to_json()) for a in apps])

    def CreateForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Create a form draft in an app."""
        principal = current_principal()
        spec = parse_object(request.form_json, "form_json", principal.locale)
        form = self._engine.create_form(principal, request.app_id, spec)
        return form_pb2.CreateFormResponse(form_json=dumps(form.to_json()))

    def ListForms(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The forms of an app, or of the tenant."""
        forms = self._engine.list_forms(current_principal(), request.app_id)
        return form_pb2.ListFormsResponse(forms_json=[dumps(f.to_json()) for f in forms])

    def GetForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One draft with its revision and published version number."""
        form = self._engine.get_form(current_principal(), request.form_id)
        return form_pb2.GetFormResponse(form_json=dumps(form.to_json()))

    def UpdateForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Change a draft (optimistic on expected_revision)."""
        principal = current_principal()
        patch = parse_object(request.form_json, "form_json", principal.locale)
        form = self._engine.update_form(principal, request.form_id, patch, request.expected_revision)
        return form_pb2.UpdateFormResponse(form_json=dumps(form.to_json()))

    def PublishForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Publish the draft as the next version."""
        version = self._engine.publish_form(current_principal(), request.form_id)
        return form_pb2.PublishFormResponse(form_json=dumps(version.to_json()), version=version.version)

    def GetPublishedForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A published version (0 = latest)."""
        version = self._engine.get_published(current_principal(), request.form_id, request.version)
        return form_pb2.GetPublishedFormResponse(form_json=dumps(version.to_json()), version=version.version)

    def ListFieldTypes(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The field-type catalogue of crm_schema."""
        current_principal()
        return form_pb2.ListFieldTypesResponse(field_types_json=dumps(field_types_catalogue()))

    def InstallTemplate(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Install a built-in app template (default "crm") for the tenant; idempotent."""
        principal = current_principal()
        name = request.template or "crm"
        template = self._templates(name)
        if template is None:
            raise not_found("template_not_found", principal.locale, ref=name)
        app, created = self._engine.install_template(principal, template)
        return form_pb2.InstallTemplateResponse(app_json=dumps(app.to_json()), created=created)
