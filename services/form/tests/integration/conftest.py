"""Integration fixtures: a real SecantusDB, the real form server on a free port, RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from crm.form.v1 import form_pb2_grpc
from crm_runtime.client import channel
from crm_runtime.events import wait_until
from crm_runtime.principal import Principal
from crm_runtime.testing import StoreProcess, amqp_url, start_store
from form_service.events import EXCHANGE
from form_service.server import FormServer, build_form_server, connect_store


@pytest.fixture(scope="session")
def store() -> Iterator[StoreProcess]:
    s = start_store()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def form_server(store: StoreProcess) -> Iterator[FormServer]:
    db = connect_store(store.url, "crm_form")
    server = build_form_server(db, port=0, amqp_url=amqp_url(), host="127.0.0.1")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stub(form_server: FormServer) -> Iterator[Any]:
    ch = channel(f"127.0.0.1:{form_server.bundle.port}")
    yield form_pb2_grpc.FormServiceStub(ch)
    ch.close()


class Caller:
    """Calls the stub as one principal: `call("GetForm", form_id=...)` -> response."""

    def __init__(self, stub: Any, principal: Principal) -> None:
        self.stub = stub
        self.principal = principal

    def __call__(self, method: str, request: Any) -> Any:
        return getattr(self.stub, method)(request, metadata=self.principal.to_metadata(), timeout=30)


@pytest.fixture()
def make_caller(stub: Any) -> Callable[[Principal], Caller]:
    return lambda principal: Caller(stub, principal)


@pytest.fixture()
def tenant() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture()
def as_admin(stub: Any, tenant: str) -> Caller:
    return Caller(stub, Principal(tenant_id=tenant, user_id="u-admin", role="admin", locale="en"))


@pytest.fixture()
def as_sales(stub: Any, tenant: str) -> Caller:
    return Caller(stub, Principal(tenant_id=tenant, user_id="u-sales", role="sales"))


class EventQueue:
    """A private queue bound to form.events; `wait(pred)` returns the matching envelopes."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
        self.ch = self.conn.channel()
        self.ch.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True, auto_delete=False)
        self.queue = "test.form." + uuid.uuid4().hex
        self.ch.queue_declare(queue=self.queue, exclusive=True, auto_delete=True)
        self.ch.queue_bind(queue=self.queue, exchange=EXCHANGE, routing_key="form.published")
        self.received: list[dict[str, Any]] = []

    def wait(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0) -> list[dict[str, Any]]:
        def pull() -> bool:
            while True:
                method, props, body = self.ch.basic_get(self.queue, auto_ack=True)
                if method is None:
                    break
                envelope = json.loads(body)
                if envelope.get("tenant_id") == self.tenant:
                    self.received.append(envelope)
            return done(self.received)

        wait_until(pull, timeout, interval=0.1)
        return self.received

    def close(self) -> None:
        self.conn.close()


@pytest.fixture()
def events(tenant: str) -> Iterator[EventQueue]:
    q = EventQueue(tenant)
    yield q
    q.close()
