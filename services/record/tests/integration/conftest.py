"""Integration fixtures: a real SecantusDB, the real record server on a free port (production wiring), RabbitMQ.

Forms come from a StaticFormSource (our own FormSource interface); each test
gets a fresh tenant with its own copies of the test forms.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pika
import pytest
from cryptography.fernet import Fernet
from pymongo.database import Database

from crm.record.v1 import record_pb2_grpc
from crm_runtime.access import Policy
from crm_runtime.client import channel, problem_from_error
from crm_runtime.principal import Principal
from crm_runtime.testing import StoreProcess, amqp_url, start_store
from record_service.crypto import FernetCipher
from record_service.domain.forms import FormSchema, StaticFormSource
from record_service.server import RecordServer, build_record_server, connect_store
from record_service.store.directory import MongoDirectory
from services.record.tests.integration.support import Api

DB_NAME = "crm_record_it"


def customer_fields() -> list[dict[str, Any]]:
    """The customer form of the tests."""
    return [
        {
            "key": "customer_name",
            "type": "text",
            "label": {"zh-CN": "客户名称", "en": "Customer name"},
            "required": True,
            "unique": True,
            "filterable": True,
            "max_length": 200,
        },
        {
            "key": "level",
            "type": "select",
            "label": {"zh-CN": "客户分级", "en": "Level"},
            "options": [{"value": v, "label": {"zh-CN": v, "en": v}} for v in ("A", "B", "C")],
        },
        {"key": "amount", "type": "money", "label": {"zh-CN": "金额", "en": "Amount"}, "filterable": True},
        {"key": "signed_on", "type": "date", "label": {"zh-CN": "签约日期", "en": "Signed on"}},
        {
            "key": "secret",
            "type": "encrypted_text",
            "label": {"zh-CN": "身份证", "en": "Secret"},
            "readable_roles": ["admin"],
        },
        {"key": "code", "type": "auto_number", "label": {"zh-CN": "编号", "en": "Code"}, "pattern": "KH-{0000}"},
        {"key": "remark", "type": "long_text", "label": {"zh-CN": "备注", "en": "Remark"}, "searchable": True},
        {
            "key": "contact_count",
            "type": "rollup",
            "label": {"zh-CN": "联系人数", "en": "Contacts"},
            "rollup": {"form_id": "contact", "relation_field": "customer", "field": "name", "agg": "count"},
        },
    ]


def contact_fields() -> list[dict[str, Any]]:
    """The contact form: a relation to customer and a lookup through it."""
    return [
        {"key": "name", "type": "text", "label": {"zh-CN": "姓名", "en": "Name"}, "required": True},
        {
            "key": "customer",
            "type": "relation",
            "label": {"zh-CN": "客户", "en": "Customer"},
            "relation": {"form_id": "customer", "many": False},
            "filterable": True,
        },
        {
            "key": "customer_level",
            "type": "lookup",
            "label": {"zh-CN": "客户分级", "en": "Level"},
            "lookup": {"relation_field": "customer", "field": "level"},
        },
    ]


@pytest.fixture(scope="session")
def store() -> Iterator[StoreProcess]:
    s = start_store()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def db(store: StoreProcess) -> Database[Any]:
    return connect_store(store.url, DB_NAME)


@pytest.fixture(scope="session")
def forms() -> StaticFormSource:
    return StaticFormSource()


@pytest.fixture(scope="session")
def record_server(db: Database[Any], forms: StaticFormSource) -> Iterator[RecordServer]:
    server = build_record_server(
        db,
        port=0,
        host="127.0.0.1",
        forms=forms,
        cipher=FernetCipher(Fernet.generate_key()),
        tz=ZoneInfo("Asia/Shanghai"),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stub(record_server: RecordServer) -> Iterator[Any]:
    ch = channel(f"127.0.0.1:{record_server.bundle.port}")
    yield record_pb2_grpc.RecordServiceStub(ch)
    ch.close()


def problem(exc: grpc.RpcError) -> dict[str, Any]:
    """The JSON problem of a failed call."""
    return problem_from_error(exc)


class Tenant:
    """A fresh tenant with the test forms published, callers per role, and users in the directory replica."""

    def __init__(self, stub: Any, forms: StaticFormSource, directory: MongoDirectory | None = None) -> None:
        self.id = "t-" + uuid.uuid4().hex[:12]
        self.stub = stub
        self.forms = forms
        self.directory = directory
        self.customer = FormSchema(f"cu-{self.id}", "customer", self.id, 1, "customer_name", tuple(customer_fields()))
        self.contact = FormSchema(f"co-{self.id}", "contact", self.id, 1, "name", tuple(contact_fields()))
        forms.add(self.customer)
        forms.add(self.contact)

    def publish(self, form: FormSchema) -> None:
        self.forms.add(form)

    def user(self, user_id: str, dept: str = "d-1", *, active: bool = True) -> None:
        """Put a user into the record service's directory replica (as a user.* event would)."""
        assert self.directory is not None
        self.directory.put(self.id, user_id, dept, active=active, name=user_id)

    def api(
        self,
        role: str = "admin",
        user: str = "u-admin",
        dept: str = "d-1",
        scope: tuple[str, ...] = (),
        locale: str = "en",
        tenant: str | None = None,
        policy: Policy | None = None,
    ) -> Api:
        """A caller; `policy` (crm_runtime.access.compile_policy) replaces the built-in policy of `role`."""
        principal = Principal(
            tenant_id=tenant or self.id,
            user_id=user,
            role=role,
            department_id=dept,
            scope_departments=scope,
            locale=locale,
            policy_override=policy,
        )
        return Api(self.stub, principal)


@pytest.fixture()
def tenant(stub: Any, forms: StaticFormSource, record_server: RecordServer) -> Tenant:
    return Tenant(stub, forms, record_server.directory)


class EventQueue:
    """A private queue bound to record.events; `wait(pred)` collects this tenant's envelopes."""

    def __init__(self, tenant_id: str, key: str = "record.#") -> None:
        self.tenant_id = tenant_id
        self.name = f"test.record.{uuid.uuid4().hex[:10]}"
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
        self.channel = self.conn.channel()
        self.channel.exchange_declare(exchange="record.events", exchange_type="topic", durable=True, auto_delete=False)
        # exclusive: gone with the connection (auto_delete needs a consumer; basic_get is not one)
        self.channel.queue_declare(queue=self.name, exclusive=True)
        self.channel.queue_bind(queue=self.name, exchange="record.events", routing_key=key)
        self.seen: list[dict[str, Any]] = []

    def wait(self, predicate: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _props, body = self.channel.basic_get(self.name, auto_ack=True)
            if method is None:
                if predicate(self.seen):
                    return self.seen
                self.conn.sleep(0.05)
                continue
            env = json.loads(body)
            if env.get("tenant_id") == self.tenant_id:
                self.seen.append(env)
        return self.seen

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture()
def events(tenant: Tenant) -> Iterator[EventQueue]:
    q = EventQueue(tenant.id)
    yield q
    q.close()
