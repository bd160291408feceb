"""Every domain error class through both boundaries: the status and problem type a client sees.

A service raises a crm_runtime.errors class: gRPC status (crm_runtime.grpc_server), then
problem+json (gateway.errors.rpc_error_response). The gateway's own directory code
raises the same classes (gateway.domain_errors): problem+json straight away
(gateway.errors.domain_error_response), with the specific code of the instance.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import flask
import grpc
import pytest

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime import errors
from crm_runtime.client import channel
from crm_runtime.grpc_server import build_server
from crm_runtime.principal import Principal
from gateway.domain_errors import domain_error
from gateway.errors import DOMAIN_STATUS, register_error_handlers, rpc_error_response
from gateway.i18n import MESSAGES

# base class -> (gRPC code, HTTP status, problem code at the gateway after a service raised it)
TABLE: dict[type[errors.DomainError], tuple[grpc.StatusCode, int, str]] = {
    errors.ValidationFailed: (grpc.StatusCode.INVALID_ARGUMENT, 422, "validation_failed"),
    errors.BadRequest: (grpc.StatusCode.FAILED_PRECONDITION, 400, "bad_request"),
    errors.NotFound: (grpc.StatusCode.NOT_FOUND, 404, "not_found"),
    errors.Conflict: (grpc.StatusCode.ALREADY_EXISTS, 409, "conflict"),
    errors.Locked: (grpc.StatusCode.FAILED_PRECONDITION, 423, "locked"),
    errors.Forbidden: (grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
    errors.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, 401, "unauthenticated"),
    errors.PayloadTooLarge: (grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "payload_too_large"),
    errors.TooManyRequests: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "too_many_requests"),
    errors.Unavailable: (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"),
    errors.DeadlineExceeded: (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "upstream_timeout"),
}

PACKAGES = ("crm_runtime", "form_service", "record_service", "workflow_service", "gateway")
GATEWAY_SRC = Path(importlib.import_module("gateway").__file__ or "").parent


def _all_classes(base: type[errors.DomainError]) -> set[type[errors.DomainError]]:
    out: set[type[errors.DomainError]] = set()
    for sub in base.__subclasses__():
        out |= {sub} | _all_classes(sub)
    return out


def _every_class() -> list[type[errors.DomainError]]:
    """Every DomainError subclass defined anywhere in our packages (each module imported)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    return sorted(_all_classes(errors.DomainError), key=lambda c: f"{c.__module__}.{c.__qualname__}")


CLASSES = _every_class()


def _row(cls: type[errors.DomainError]) -> tuple[grpc.StatusCode, int, str]:
    """The row of the nearest base class in TABLE."""
    return next(TABLE[base] for base in cls.__mro__ if base in TABLE)


def _instance(cls: type[errors.DomainError]) -> errors.DomainError:
    if issubclass(cls, errors.ValidationFailed):
        return cls([errors.FieldError("name", "required", "必填")])
    if issubclass(cls, errors.TooManyRequests):
        return cls("slow down", retry_after=7)
    return cls("detail of " + cls.__name__)


class _Raising(form_pb2_grpc.FormServiceServicer):
    def GetForm(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated API
        classes = {f"{c.__module__}.{c.__qualname__}": c for c in CLASSES}
        raise _instance(classes[request.form_id])


@pytest.fixture(scope="module")
def stub() -> Any:
    bundle = build_server(
        0, [lambda s: form_pb2_grpc.add_FormServiceServicer_to_server(_Raising(), s)], ["crm.form.v1.FormService"]
    )
    bundle.server.start()
    yield form_pb2_grpc.FormServiceStub(channel(f"127.0.0.1:{bundle.port}"))
    bundle.server.stop(0)


def test_the_table_covers_every_domain_error_class_that_exists() -> None:
    assert set(TABLE) <= set(CLASSES)
    unmapped = {c.__qualname__ for c in CLASSES if not any(base in TABLE for base in c.__mro__)}
    assert not unmapped, f"domain errors without a row in the table: {unmapped}"
    # the gateway's own mapping is the same table, by class, and agrees with each class's declared status
    assert {cls: row[1] for cls, row in TABLE.items()} == DOMAIN_STATUS
    assert all(cls.http_status == status for cls, status in DOMAIN_STATUS.items())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_each_error_class_reaches_the_client_as_its_status(stub: Any, cls: type[errors.DomainError]) -> None:
    code, status, problem_code = _row(cls)
    md = Principal(tenant_id="t1", locale="en").to_metadata()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetForm(form_pb2.GetFormRequest(form_id=f"{cls.__module__}.{cls.__qualname__}"), metadata=md)
    assert err.value.code() == code
    app = flask.Flask(__name__)
    with app.test_request_context("/api/v1/x"):
        resp = rpc_error_response(err.value, "form")
    body = json.loads(resp.get_data())
    assert resp.status_code == status and body["status"] == status
    assert resp.mimetype == "application/problem+json" and body["type"] == f"urn:crm:problem:{problem_code}"
    if status == 503:
        assert resp.headers["Retry-After"] == "5"
    if status == 429:
        assert resp.headers["Retry-After"] == "7"
    if status == 422:
        assert body["errors"][0]["field"] == "name"


def _gateway_app(error: errors.DomainError) -> flask.Flask:
    """A bare app with the gateway's error boundary and one route raising `error`."""
    from apiflask import APIFlask

    app = APIFlask(__name__)
    register_error_handlers(app)

    @app.get("/api/v1/raise")
    def _raise() -> Any:
        raise error

    return app


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_each_error_class_raised_in_the_gateway_reaches_the_client_as_its_status(
    cls: type[errors.DomainError],
) -> None:
    _code, status, _problem_code = _row(cls)
    error = _instance(cls)
    resp = _gateway_app(error).test_client().get("/api/v1/raise")
    body = resp.get_json()
    assert resp.status_code == status and body["status"] == status
    assert resp.mimetype == "application/problem+json"
    assert body["type"] == f"urn:crm:problem:{error.code}" and body["code"] == error.code
    assert body["instance"] == "/api/v1/raise"
    if status == 503:
        assert resp.headers["Retry-After"] == "5"
    if status == 429:
        assert resp.headers["Retry-After"] == "7" and body["retry_after"] == 7
    if status == 422:
        assert body["errors"] == [{"field": "name", "rule": "required", "message": "必填"}]
    else:
        assert body["errors"] == [] and body["detail"] == error.detail


# domain_error(Class, "code" ...) as written in the gateway's source
_RAISED = re.compile(r"domain_error\(\s*(\w+),\s*(?:\"(\w+)\"|\"(\w+)\" if [^,]+ else \"(\w+)\")")


def _raised_in_gateway() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in GATEWAY_SRC.rglob("*.py"):
        for match in _RAISED.finditer(path.read_text(encoding="utf-8")):
            for code in match.groups()[1:]:
                if code:
                    found.add((match.group(1), code))
    return found


RAISED = sorted(_raised_in_gateway())


def test_the_gateway_raises_its_own_errors_as_domain_errors() -> None:
    assert len(RAISED) >= 20, RAISED  # the directory code: users, roles, departments, tokens, auth ...
    assert ("NotFound", "user_not_found") in RAISED and ("Unauthenticated", "refresh_token_reused") in RAISED
    # no domain module of the gateway knows HTTP or the HTTP boundary
    for name in ("users", "departments", "tokens", "roles", "passwords", "account", "tenants"):
        text = (GATEWAY_SRC / f"{name}.py").read_text(encoding="utf-8")
        assert not re.search(r"^(from|import) (flask|apiflask|werkzeug|gateway\.errors)\b", text, re.M), name


@pytest.mark.parametrize(("class_name", "code"), RAISED, ids=lambda v: str(v))
def test_each_error_the_gateway_raises_has_its_status_and_a_message_in_both_languages(
    class_name: str, code: str
) -> None:
    cls = getattr(errors, class_name)
    assert set(MESSAGES[code]) == {"zh-CN", "en"}
    app = flask.Flask(__name__)
    for locale in ("zh-CN", "en"):
        with app.test_request_context("/", headers={"Accept-Language": locale}):
            error = domain_error(cls, code)
        resp = _gateway_app(error).test_client().get("/api/v1/raise")
        body = resp.get_json()
        assert resp.status_code == DOMAIN_STATUS[next(b for b in cls.__mro__ if b in DOMAIN_STATUS)]
        assert body["code"] == code and body["type"] == f"urn:crm:problem:{code}"
        assert body["detail"] == MESSAGES[code][locale]
