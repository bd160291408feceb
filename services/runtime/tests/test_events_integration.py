"""Integration: publisher, outbox relay and idempotent consumer on real RabbitMQ + SecantusDB."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from crm_runtime.events import EventConsumer, EventPublisher, OutboxRelay, make_envelope, wait_until
from crm_runtime.mongo import connect
from crm_runtime.testing import StoreProcess, amqp_url, start_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store() -> Iterator[StoreProcess]:
    s = start_store()
    yield s
    s.stop()


@pytest.fixture()
def db(store: StoreProcess) -> Any:
    return connect(store.url, "rt_" + uuid.uuid4().hex[:8], alias="rt" + uuid.uuid4().hex[:6])


def _bind_queue(exchange: str, key: str) -> tuple[Any, Any, str]:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    ch = conn.channel()
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    q = "test." + uuid.uuid4().hex
    ch.queue_declare(queue=q, exclusive=True)
    ch.queue_bind(queue=q, exchange=exchange, routing_key=key)
    return conn, ch, q


def _drain(ch: Any, q: str, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def pull() -> bool:
        while True:
            method, _p, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                break
            got.append(json.loads(body))
        return len(got) >= want

    wait_until(pull, timeout)
    return got


def test_relay_publishes_pending_envelopes_once_and_marks_them(db: Any) -> None:
    exchange = "rt-" + uuid.uuid4().hex[:8] + ".events"
    conn, ch, q = _bind_queue(exchange, "#")
    outbox = db["outbox"]
    OutboxRelay.ensure_indexes(outbox)
    tenant = uuid.uuid4().hex
    envs = [make_envelope("thing.created", tenant, {"n": i}, source="rt") for i in range(5)]
    outbox.insert_many([{"_id": e["id"], "event": e, "published": False} for e in envs])
    relay = OutboxRelay(outbox, EventPublisher(amqp_url(), exchange))
    assert relay.run_once() == 5
    assert relay.run_once() == 0
    got = _drain(ch, q, 5)
    assert [m["data"]["n"] for m in got] == [0, 1, 2, 3, 4]
    assert outbox.count_documents({"published": False}) == 0
    conn.close()


def test_relay_keeps_envelopes_when_broker_unreachable(db: Any) -> None:
    outbox = db["outbox"]
    OutboxRelay.ensure_indexes(outbox)
    env = make_envelope("thing.created", "t", {}, source="rt")
    outbox.insert_one({"_id": env["id"], "event": env, "published": False})
    relay = OutboxRelay(outbox, EventPublisher("amqp://guest:guest@127.0.0.1:1/%2F", "x.events", connect_timeout=0.5))
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        relay.run_once()
    assert outbox.count_documents({"published": False}) == 1


def test_consumer_is_idempotent_and_dead_letters_poison(db: Any) -> None:
    exchange = "rt-" + uuid.uuid4().hex[:8] + ".events"
    handled: list[str] = []

    def handler(envelope: dict[str, Any]) -> None:
        if envelope["data"].get("poison"):
            raise ValueError("cannot handle this")
        handled.append(envelope["id"])

    queue = "rt.consumer." + uuid.uuid4().hex[:8]
    consumer = EventConsumer(amqp_url(), queue, [(exchange, "#")], handler, db["processed"])
    consumer.ensure_indexes()
    consumer.start()
    assert consumer.connected.wait(10)
    pub = EventPublisher(amqp_url(), exchange)
    good = make_envelope("thing.created", "t", {}, source="rt")
    pub.publish(good)
    pub.publish(good)  # redelivery of the same event
    pub.publish(make_envelope("thing.created", "t", {"poison": True}, source="rt"))
    assert wait_until(lambda: len(handled) >= 1, 10)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    ch = conn.channel()
    dead: list[Any] = []

    def dlq_has() -> bool:
        method, props, body = ch.basic_get(queue + ".dlq", auto_ack=True)
        if method is not None:
            dead.append((props.headers, json.loads(body)))
        return bool(dead)

    assert wait_until(dlq_has, 10)
    assert dead[0][0]["x-error"] == "cannot handle this"
    consumer.stop()
    assert handled == [good["id"]]
    ch.queue_delete(queue)
    ch.queue_delete(queue + ".dlq")
    conn.close()
    pub.close()
