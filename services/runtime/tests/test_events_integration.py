"""Integration: publisher, outbox relay and idempotent consumer on real RabbitMQ + SecantusDB."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from structlog.testing import capture_logs

from crm_runtime.envelope import make_envelope
from crm_runtime.events import EventConsumer, EventPublisher, OutboxRelay, wait_until
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


def test_an_event_no_queue_is_bound_for_is_kept_unrouted_and_published_once_a_consumer_binds(db: Any) -> None:
    # nameko's publisher sends with mandatory=False: the broker would drop these without a word
    exchange = "rt-" + uuid.uuid4().hex[:8] + ".events"
    outbox = db["outbox"]
    OutboxRelay.ensure_indexes(outbox)
    envs = [make_envelope("thing.created", "t1", {"n": i}, source="rt") for i in range(3)]
    outbox.insert_many([{"_id": e["id"], "event": e, "published": False} for e in envs])
    relay = OutboxRelay(outbox, EventPublisher(amqp_url(), exchange))

    assert relay.run_once() == 3
    unrouted = list(outbox.find({"unrouted": True}))
    assert len(unrouted) == 3 and all(d["unrouted_types"] == ["thing.created"] for d in unrouted)

    conn, ch, q = _bind_queue(exchange, "thing.*")
    assert relay.republish_unrouted() == 3
    assert relay.run_once() == 3
    assert sorted(m["data"]["n"] for m in _drain(ch, q, 3)) == [0, 1, 2]
    assert outbox.count_documents({"unrouted": True}) == 0
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


def _with_heartbeat(url: str, seconds: int) -> str:
    return url + ("&" if "?" in url else "?") + f"heartbeat={seconds}"


def _pika_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("pika") and r.levelno >= logging.WARNING]


def test_idle_relay_keeps_its_connection_past_the_heartbeat_timeout(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A relay idle for over three heartbeats still holds the same connection and publishes without an error."""
    caplog.set_level(logging.WARNING)
    exchange = "rt-" + uuid.uuid4().hex[:8] + ".events"
    conn, ch, q = _bind_queue(exchange, "#")
    outbox = db["outbox"]
    OutboxRelay.ensure_indexes(outbox)
    publisher = EventPublisher(_with_heartbeat(amqp_url(), 2), exchange)
    relay = OutboxRelay(outbox, publisher, poll_interval=0.2)
    first = make_envelope("thing.created", "t", {"n": 1}, source="rt")
    outbox.insert_one({"_id": first["id"], "event": first, "published": False})
    with capture_logs() as logs:
        thread = relay.start()
        try:
            assert [m["id"] for m in _drain(ch, q, 1)] == [first["id"]]
            kept = publisher._conn
            assert kept is not None and kept.is_open
            time.sleep(7.0)  # the broker drops a connection that misses 2 heartbeats (4 s here)
            second = make_envelope("thing.created", "t", {"n": 2}, source="rt")
            outbox.insert_one({"_id": second["id"], "event": second, "published": False})
            assert [m["id"] for m in _drain(ch, q, 1)] == [second["id"]]
            assert publisher._conn is kept and kept.is_open
        finally:
            relay.stop()
            thread.join(5)
    assert not thread.is_alive()
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    assert _pika_errors(caplog) == []
    assert outbox.count_documents({"published": False}) == 0
    publisher.close()
    conn.close()


def test_publisher_reconnects_quietly_when_the_broker_dropped_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection left unserviced past the heartbeat timeout: one warning line, no traceback, delivered."""
    caplog.set_level(logging.WARNING)
    exchange = "rt-" + uuid.uuid4().hex[:8] + ".events"
    conn, ch, q = _bind_queue(exchange, "#")
    publisher = EventPublisher(_with_heartbeat(amqp_url(), 1), exchange)
    first = make_envelope("thing.created", "t", {"n": 1}, source="rt")
    publisher.publish(first)
    dropped = publisher._conn
    time.sleep(4.5)  # a stalled process: nothing services the connection, the broker drops it
    second = make_envelope("thing.created", "t", {"n": 2}, source="rt")
    with capture_logs() as logs:
        publisher.publish(second)
    assert publisher._conn is not dropped
    assert [m["id"] for m in _drain(ch, q, 2)] == [first["id"], second["id"]]
    assert [(e["event"], e["log_level"]) for e in logs] == [("amqp_connection_dropped", "warning")]
    assert "Traceback" not in caplog.text
    assert _pika_errors(caplog) == []
    publisher.close()
    conn.close()
