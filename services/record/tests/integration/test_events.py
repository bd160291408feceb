"""Events through the outbox relay, a relay crash between publish and mark, and a broker outage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from crm_runtime.events import EventConsumer, wait_until
from crm_runtime.testing import StoreProcess, amqp_url, free_port
from record_service.server import build_relay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def relay(db: Database[Any]) -> Iterator[Any]:
    r = build_relay(db, amqp_url(), poll_interval=0.05)
    r.start()
    yield r
    r.stop()


def test_writes_publish_events_through_the_relay(tenant: Any, events: Any, relay: Any) -> None:
    api = tenant.api()
    tenant.user("u-7")
    rec = api.create("customer", {"customer_name": "事件公司", "level": "A"})
    api.update(rec["id"], {"level": "B"}, 1, owner_id="u-7")
    api.call("DeleteRecord", record_id=rec["id"])
    api.call("RestoreRecord", record_id=rec["id"])
    seen = events.wait(lambda s: len(s) >= 5)
    by_type = {e["type"]: e for e in seen}
    assert set(by_type) == {
        "record.created",
        "record.updated",
        "record.owner_changed",
        "record.deleted",
        "record.restored",
    }
    created = by_type["record.created"]["data"]
    assert created["record_id"] == rec["id"] and created["form_id"] == tenant.customer.id
    assert created["data"]["customer_name"] == "事件公司" and created["form_version"] == 1
    assert by_type["record.updated"]["data"]["changes"] == {"level": {"old": "A", "new": "B"}}
    assert by_type["record.updated"]["data"]["version"] == 2
    assert by_type["record.owner_changed"]["data"]["new_owner_id"] == "u-7"
    assert all(e["source"] == "record" and e["actor"] == "u-admin" for e in seen)


def test_bulk_events_are_published_once_the_batch_is_written(tenant: Any, events: Any, relay: Any, db: Any) -> None:
    api = tenant.api()
    rows = [{"customer_name": f"批量事件{i}"} for i in range(1500)]  # two transactions
    api.call("BulkCreateRecords", form_id="customer", records_json=json.dumps(rows, ensure_ascii=False))
    seen = events.wait(lambda s: len(s) >= 1500, timeout=60)
    assert len({e["data"]["record_id"] for e in seen}) == 1500 and len({e["id"] for e in seen}) == 1500
    # one batch entry stands for 200 records; what is on the wire is one ordinary event a record
    one = seen[0]
    assert one["type"] == "record.created" and one["source"] == "record" and one["tenant_id"] == tenant.id
    assert one["data"]["form_id"] == tenant.customer.id and one["data"]["data"]["customer_name"].startswith("批量事件")
    assert db["history"].count_documents({"tenant_id": tenant.id}) == 1500 // 200 + 1
    entries, _ = api.history(one["data"]["record_id"])
    assert [e["action"] for e in entries] == ["created"] and entries[0]["id"] == one["id"]
    assert {c["field"] for c in entries[0]["changes"]} >= {"customer_name"}
    assert wait_until(lambda: db["history"].count_documents({"tenant_id": tenant.id, "published": False}) == 0, 15)


# ---------------------------------------------------------------- reliability


def relay_process(
    store: StoreProcess, db_name: str, *, crash: bool, amqp: str | None = None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        MONGO_URL=store.url,
        RECORD_DB=db_name,
        AMQP_URL=amqp or amqp_url(),
        RELAY_HTTP_PORT=str(free_port()),
        LOG_LEVEL="WARNING",
    )
    env.pop("CRM_RELAY_CRASH_AFTER_PUBLISH", None)
    if crash:
        env["CRM_RELAY_CRASH_AFTER_PUBLISH"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "record_service", "relay"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture()
def isolated(store: StoreProcess, forms: Any, stub: Any) -> Iterator[Any]:
    """A second record server on its own database, so only our relays publish its outbox."""
    from zoneinfo import ZoneInfo

    from cryptography.fernet import Fernet

    from crm.record.v1 import record_pb2_grpc
    from crm_runtime.client import channel
    from record_service.crypto import FernetCipher
    from record_service.server import build_record_server, connect_store

    from .conftest import Tenant

    name = "crm_record_rel_" + uuid.uuid4().hex[:8]
    db = connect_store(store.url, name)
    server = build_record_server(
        db,
        port=0,
        host="127.0.0.1",
        forms=forms,
        cipher=FernetCipher(Fernet.generate_key()),
        tz=ZoneInfo("Asia/Shanghai"),
    )
    server.start()
    ch = channel(f"127.0.0.1:{server.bundle.port}")
    tenant = Tenant(record_pb2_grpc.RecordServiceStub(ch), forms)
    yield name, db, tenant
    ch.close()
    server.stop()
    db.client.drop_database(name)


def test_relay_crash_after_publish_republishes_and_the_consumer_handles_it_once(
    isolated: Any, store: StoreProcess
) -> None:
    name, db, tenant = isolated
    handled: list[dict[str, Any]] = []
    outcomes: list[str] = []

    class Recording(EventConsumer):
        def handle_body(self, body: bytes) -> str:
            outcome = super().handle_body(body)
            outcomes.append(outcome)
            return outcome

    consumer = Recording(
        amqp_url(),
        f"test.crash.{uuid.uuid4().hex[:8]}",
        [("record.events", "record.created")],
        handled.append,
        db["processed"],
        transient=True,
    )
    consumer.ensure_indexes()
    consumer.start()
    assert consumer.connected.wait(10)
    try:
        rec = tenant.api().create("customer", {"customer_name": "崩溃公司"})
        crashed = relay_process(store, name, crash=True)
        assert crashed.wait(30) == 17  # exited right after the confirmed publish, before marking
        entry = db["history"].find_one({"record_id": rec["id"]})
        assert entry["published"] is False
        again = relay_process(store, name, crash=False)
        try:
            assert wait_until(lambda: db["history"].find_one({"record_id": rec["id"]})["published"] is True, 20)
            assert wait_until(lambda: len(outcomes) >= 2, 20)
        finally:
            again.terminate()
            again.wait(10)
        assert outcomes == ["done", "duplicate"]  # delivered twice ...
        assert len(handled) == 1 and handled[0]["data"]["record_id"] == rec["id"]  # ... handled once
    finally:
        consumer.stop()


class Proxy:
    """A TCP proxy to RabbitMQ that a test can close (refusing and cutting connections) and reopen."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            if self._server is not srv:  # closed meanwhile: refuse
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self._server is not None:
            srv, self._server = self._server, None
            try:
                srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            srv.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"


def test_broker_down_writes_succeed_and_events_arrive_after_it_returns(isolated: Any) -> None:
    from .conftest import EventQueue

    name, db, tenant = isolated
    proxy = Proxy(("127.0.0.1", 5672))
    proxy.open()
    queue = EventQueue(tenant.id, "record.created")
    relay = build_relay(db, proxy.url, poll_interval=0.05)
    relay.start()
    try:
        api = tenant.api()
        first = api.create("customer", {"customer_name": "宕机前"})
        assert wait_until(lambda: db["history"].find_one({"record_id": first["id"]})["published"] is True, 15)
        proxy.close()
        ids = [api.create("customer", {"customer_name": f"宕机中{i}"})["id"] for i in range(3)]
        time.sleep(1.0)
        assert db["history"].count_documents({"tenant_id": tenant.id, "published": False}) == 3
        assert not relay.healthy
        proxy.open()
        seen = queue.wait(lambda s: {e["data"]["record_id"] for e in s} >= set(ids), timeout=30)
        assert {e["data"]["record_id"] for e in seen} >= set(ids)
        assert wait_until(lambda: db["history"].count_documents({"tenant_id": tenant.id, "published": False}) == 0, 15)
    finally:
        relay.stop()
        proxy.close()
        queue.close()
