"""The event bus: envelope, publisher with confirms, outbox relay, idempotent consumer.

Wire format matches nameko 2.14: each publishing service has a durable topic
exchange `<service>.events`, the routing key is the event type, messages are
persistent JSON. The body is the envelope
`{id, type, tenant_id, occurred_at, source, actor, data}`, built by the pure
`crm_runtime.envelope.make_envelope` (schema: proto/crm/events/v1/events.proto).

Reliability: services never publish from the request path. They write the
envelope into an outbox collection in the same store write (or transaction)
as the change; `OutboxRelay` publishes pending envelopes with publisher
confirms and only then marks them sent. A crash between publish and mark
republishes, so consumers are idempotent (`EventConsumer` remembers processed
event ids in a TTL collection) and ack only after their work commits.

Heartbeats: a BlockingConnection answers the broker's heartbeats only while
pika runs its I/O loop. The relay therefore waits between polls inside
`EventPublisher.idle()` (`process_data_events`), never in a plain sleep: an
idle connection is kept, not dropped after the heartbeat timeout. If the broker
dropped it anyway (a restart, a network blip), the next publish reconnects
with one warning line and pika's own error logs of the dead socket are held
back, so a quiet spell leaves no traceback.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from prometheus_client import Counter, Gauge
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm_runtime.envelope import encode_envelope
from crm_runtime.logging import get_logger

log = get_logger("crm.events")

EVENTS_PUBLISHED = Counter("crm_events_published_total", "Events published to RabbitMQ", ["exchange", "type"])
EVENTS_CONSUMED = Counter("crm_events_consumed_total", "Events consumed", ["queue", "outcome"])
OUTBOX_BACKLOG = Gauge("crm_outbox_backlog", "Envelopes waiting in the outbox at the last poll", ["collection"])
EVENTS_UNROUTABLE = Counter(
    "crm_events_unroutable_total", "Events the broker returned: no queue was bound for them", ["exchange", "type"]
)
EVENT_LAG = Gauge("crm_event_lag_seconds", "Age of the last event published by the relay", ["collection"])


def exchange_name(service: str) -> str:
    """The topic exchange of a publishing service, nameko style."""
    return f"{service}.events"


DEFAULT_HEARTBEAT = 30
"""Heartbeat interval (seconds) asked of the broker unless the URL names one (`?heartbeat=5`)."""

# Errors of a connection that is gone (closed by the broker, reset, timed out):
# reconnect and try again. Anything else (a nack, a channel closed for a
# protocol error) is the caller's to see.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
)


def connection_parameters(amqp_url: str) -> pika.URLParameters:
    """pika parameters of a URL; the heartbeat is DEFAULT_HEARTBEAT unless the URL sets one."""
    params = pika.URLParameters(amqp_url)
    if "heartbeat" not in parse_qs(urlsplit(amqp_url).query):
        params.heartbeat = DEFAULT_HEARTBEAT
    return params


class _ThreadQuiet(logging.Filter):
    """Drops pika's records logged by a thread while it is inside `quiet_pika()`."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "depth", 0)


_QUIET = _ThreadQuiet()
for _name in [n for n in logging.Logger.manager.loggerDict if n == "pika" or n.startswith("pika.")]:
    # a logger's filters see only its own records, so every pika module logger gets it
    logging.getLogger(_name).addFilter(_QUIET)


@contextmanager
def quiet_pika() -> Iterator[None]:
    """Hold back pika's logs (in this thread only) while touching a connection that may be dead.

    pika logs a lost socket at ERROR with a traceback before it raises; the
    caller handles the raised error with one line of its own instead.
    """
    _QUIET.local.depth = getattr(_QUIET.local, "depth", 0) + 1
    try:
        yield
    finally:
        _QUIET.local.depth -= 1


def declare_exchange(channel: Any, name: str) -> None:
    """Declare a service exchange exactly as nameko 2.14 does (topic, durable, not auto-delete)."""
    channel.exchange_declare(exchange=name, exchange_type="topic", durable=True, auto_delete=False)


class EventPublisher:
    """Publishes envelopes to a topic exchange with publisher confirms, as mandatory messages.

    nameko's publisher sends with `mandatory=False`: an event no queue is bound
    for is dropped by the broker without a word. Here every message is
    mandatory, so the broker returns one it cannot route and `publish()` says so
    (False); the relay keeps such an envelope marked `unrouted` in its outbox,
    counted, to be published again once a consumer exists
    (`OutboxRelay.republish_unrouted`), instead of losing it.

    Not thread-safe (pika's BlockingConnection is not): one per thread. A
    connection kept between publishes is serviced by `idle()`; if the broker
    dropped it all the same, `publish()` reconnects once, quietly, and
    publishes again. Any other failed publish raises; callers (the relay)
    retry later.
    """

    def __init__(self, amqp_url: str, exchange: str, *, connect_timeout: float = 5.0, mandatory: bool = True) -> None:
        self._url = amqp_url
        self._exchange = exchange
        self._mandatory = mandatory
        self._timeout = connect_timeout
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None

    @property
    def connected(self) -> bool:
        """Whether a connection is open (as far as pika knows)."""
        return self._conn is not None and self._conn.is_open

    def _ensure(self) -> Any:
        if self._conn is None or self._conn.is_closed or self._channel is None or self._channel.is_closed:
            self.close()
            params = connection_parameters(self._url)
            params.socket_timeout = self._timeout
            params.blocked_connection_timeout = 30
            self._conn = pika.BlockingConnection(params)
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
            declare_exchange(self._channel, self._exchange)
        return self._channel

    def _dropped(self, exc: BaseException) -> None:
        log.warning("amqp_connection_dropped", exchange=self._exchange, error=str(exc) or type(exc).__name__)
        self.close()

    def _send(self, envelope: dict[str, Any], body: bytes) -> None:
        self._ensure().basic_publish(
            exchange=self._exchange,
            routing_key=envelope["type"],
            body=body,
            properties=pika.BasicProperties(
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=envelope["id"],
                type=envelope["type"],
            ),
            mandatory=self._mandatory,
        )

    def _returned(self, envelope: dict[str, Any]) -> bool:
        EVENTS_UNROUTABLE.labels(self._exchange, envelope["type"]).inc()
        log.warning("event_unroutable", exchange=self._exchange, type=envelope["type"], event_id=envelope["id"])
        return False

    def publish(self, envelope: dict[str, Any]) -> bool:
        """Publish one envelope and wait for the broker's confirm; False when the broker returned it (no queue)."""
        body = encode_envelope(envelope)
        if self.connected:
            # a kept connection may have been dropped by the broker since the last use
            try:
                with quiet_pika():
                    self._send(envelope, body)
            except pika.exceptions.UnroutableError:
                return self._returned(envelope)
            except CONNECTION_LOST as exc:
                # a publish whose confirm was lost may arrive twice: consumers are idempotent
                self._dropped(exc)
            except Exception:
                self.close()
                raise
            else:
                EVENTS_PUBLISHED.labels(self._exchange, envelope["type"]).inc()
                return True
        try:
            self._send(envelope, body)
        except pika.exceptions.UnroutableError:
            return self._returned(envelope)
        except Exception:
            self.close()
            raise
        EVENTS_PUBLISHED.labels(self._exchange, envelope["type"]).inc()
        return True

    def idle(self, seconds: float) -> bool:
        """Wait up to `seconds` servicing the connection (heartbeats); False (at once) when there is none.

        The relay waits here between polls so that the broker never sees an
        idle connection miss its heartbeats. A connection found dropped is
        closed with one warning line; the next `publish()` opens a new one.
        """
        if not self.connected:
            return False
        assert self._conn is not None
        try:
            with quiet_pika():
                self._conn.process_data_events(time_limit=seconds)
        except CONNECTION_LOST as exc:
            self._dropped(exc)
        return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                with quiet_pika():
                    conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


class OutboxRelay:
    """Publishes outbox envelopes and marks them sent.

    An outbox document holds the envelope under `envelope_field` and a boolean
    `published` flag (indexed). A document whose event the broker returned (no
    queue bound for its type) is marked published with `unrouted: true` and the
    types that were returned; `republish_unrouted()` puts such documents back
    in line, once consumers are bound. Documents are published in insertion order (each batch by occurred_at); each is
    marked only after the broker confirmed it, so a crash republishes rather
    than loses. `CRM_RELAY_CRASH_AFTER_PUBLISH=1` makes the process exit right
    after the first confirmed publish (used by the crash test).
    """

    def __init__(
        self,
        collection: Collection[Any],
        publisher: EventPublisher,
        *,
        envelope_field: str = "event",
        batch_size: int = 200,
        poll_interval: float = 0.2,
        expand: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._col = collection
        self._expand = expand
        self._publisher = publisher
        self._field = envelope_field
        self._batch = batch_size
        self._poll = poll_interval
        self._crash_after_publish = os.environ.get("CRM_RELAY_CRASH_AFTER_PUBLISH") == "1"
        self._stop = threading.Event()
        self.healthy = True

    @staticmethod
    def ensure_indexes(collection: Collection[Any]) -> None:
        """The relay's query path: pending envelopes."""
        collection.create_index([("published", ASCENDING)], name="outbox_pending")
        collection.create_index(
            [("unrouted", ASCENDING)], name="outbox_unrouted", partialFilterExpression={"unrouted": True}
        )

    def _envelopes(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """The envelopes of an outbox document: its envelope field, or what `expand` makes of it."""
        if self._expand is not None:
            return self._expand(doc)
        return [doc[self._field]]

    def run_once(self) -> int:
        """Publish one batch of pending outbox documents; return how many were published.

        A document may stand for several events (`expand`, e.g. one entry of a
        bulk write): it is marked published once all of them are confirmed, so a
        crash republishes the whole document (consumers are idempotent by event id).
        """
        # No store-side sort: sorting makes the store fetch *every* pending
        # envelope per poll (a 10,000-event backlog was drained at ~250/s). The
        # `published` index returns equal keys in insertion order, which is each
        # writer's time order; the batch itself is ordered by occurred_at.
        projection = None if self._expand is not None else {self._field: 1}
        found = list(self._col.find({"published": False}, projection).limit(self._batch))
        pending = [(doc, self._envelopes(doc)) for doc in found]
        pending.sort(key=lambda p: (str(p[1][0].get("occurred_at", "")) if p[1] else "", str(p[0]["_id"])))
        OUTBOX_BACKLOG.labels(self._col.name).set(len(pending))
        done: list[Any] = []
        unrouted: dict[Any, list[str]] = {}
        try:
            for doc, envelopes in pending:
                for envelope in envelopes:
                    if not self._publisher.publish(envelope):
                        unrouted.setdefault(doc["_id"], []).append(str(envelope["type"]))
                    if self._crash_after_publish:
                        log.warning("relay_crash_injected", event_id=envelope["id"])
                        os._exit(17)
                done.append(doc["_id"])
        finally:
            for doc_id, types in unrouted.items():
                self._col.update_one(
                    {"_id": doc_id}, {"$set": {"unrouted": True, "unrouted_types": sorted(set(types))}}
                )
            # chunked: `$in` over many ids is slow on some stores
            for start in range(0, len(done), 200):
                self._col.update_many(
                    # by _id alone: the `_id` index covers it (adding `published` would scan)
                    {"_id": {"$in": done[start : start + 200]}},
                    {"$set": {"published": True, "published_at": datetime.now(UTC)}},
                )
        if pending and pending[-1][1]:
            last = pending[-1][1][-1]
            try:
                occurred = datetime.fromisoformat(str(last["occurred_at"]).replace("Z", "+00:00"))
                EVENT_LAG.labels(self._col.name).set((datetime.now(UTC) - occurred).total_seconds())
            except (KeyError, ValueError):
                pass
        return len(done)

    def republish_unrouted(self, limit: int = 10_000) -> int:
        """Put documents whose events were returned unroutable back in line (after a consumer was bound)."""
        ids = [d["_id"] for d in self._col.find({"unrouted": True}, {"_id": 1}).limit(limit)]
        for start in range(0, len(ids), 200):
            self._col.update_many(
                {"_id": {"$in": ids[start : start + 200]}},
                {"$set": {"published": False}, "$unset": {"unrouted": "", "unrouted_types": ""}},
            )
        return len(ids)

    def run_forever(self) -> None:
        """Poll until `stop()`; broker failures back off and retry, nothing is dropped."""
        backoff = self._poll
        while not self._stop.is_set():
            try:
                published = self.run_once()
                self.healthy = True
                backoff = self._poll
                if published >= self._batch:
                    continue
            except Exception as exc:  # noqa: BLE001 - broker or store down: retry later
                self.healthy = False
                log.warning("relay_publish_failed", error=str(exc), retry_in=backoff)
                self._publisher.close()
                backoff = min(backoff * 2, 5.0)
            self._idle(backoff)

    def _idle(self, seconds: float) -> None:
        """Wait between polls, servicing the broker connection, in slices so that `stop()` is prompt."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(left, 0.5)
            if not self._publisher.idle(step):
                self._stop.wait(step)

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run_forever, name=f"relay-{self._col.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the loop to end."""
        self._stop.set()


class EventConsumer:
    """Consumes envelopes from a durable queue, idempotently, acking after the work.

    Processed event ids are kept in `processed` (TTL index, default 7 days). A
    handler exception sends the message with its error to `<queue>.dlq`, from
    which `replay_dead_letters()` puts it back. Runs in a plain thread (no
    eventlet), so it may live beside a gRPC server.
    """

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        bindings: Iterable[tuple[str, str]],
        handler: Callable[[dict[str, Any]], None],
        processed: Collection[Any],
        *,
        prefetch: int = 50,
        ttl: timedelta = timedelta(days=7),
        transient: bool = False,
    ) -> None:
        self._url = amqp_url
        self.queue = queue
        self._bindings = list(bindings)
        self._handler = handler
        self._processed = processed
        self._prefetch = prefetch
        self._ttl = ttl
        # transient: a per-process queue (e.g. cache invalidation in every replica)
        # that the broker deletes when the consumer goes away
        self._transient = transient
        self._stop = threading.Event()
        self._conn: pika.BlockingConnection | None = None
        self.connected = threading.Event()

    def ensure_indexes(self) -> None:
        """TTL on processed ids."""
        self._processed.create_index(
            [("at", ASCENDING)], expireAfterSeconds=int(self._ttl.total_seconds()), name="processed_ttl"
        )

    def _declare(self, channel: Any) -> None:
        if self._transient:
            # a per-process queue and its dead letters go away with the process
            # (a DLQ never has a consumer, so it expires after an idle hour instead)
            channel.queue_declare(queue=self.queue + ".dlq", durable=False, arguments={"x-expires": 3_600_000})
            channel.queue_declare(queue=self.queue, durable=False, auto_delete=True)
        else:
            channel.queue_declare(queue=self.queue + ".dlq", durable=True)
            channel.queue_declare(queue=self.queue, durable=True)
        for exchange, key in self._bindings:
            declare_exchange(channel, exchange)
            channel.queue_bind(queue=self.queue, exchange=exchange, routing_key=key)

    def handle_body(self, body: bytes) -> str:
        """Process one message body; returns "done", "duplicate" or raises."""
        envelope = json.loads(body)
        event_id = envelope["id"]
        if self._processed.find_one({"_id": event_id}, {"_id": 1}) is not None:
            return "duplicate"
        self._handler(envelope)
        try:
            self._processed.insert_one({"_id": event_id, "type": envelope.get("type"), "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return "duplicate"
        return "done"

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            outcome = self.handle_body(body)
        except Exception as exc:  # noqa: BLE001 - poison message: dead-letter it with the error
            log.error("event_handler_failed", queue=self.queue, error=str(exc))
            channel.basic_publish(
                exchange="",
                routing_key=self.queue + ".dlq",
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    headers={"x-error": str(exc)[:1000], "x-original-routing-key": method.routing_key},
                ),
            )
            outcome = "dead_lettered"
        channel.basic_ack(delivery_tag=method.delivery_tag)
        EVENTS_CONSUMED.labels(self.queue, outcome).inc()

    def run_forever(self) -> None:
        """Consume until `stop()`, reconnecting after broker failures."""
        while not self._stop.is_set():
            try:
                self._conn = pika.BlockingConnection(connection_parameters(self._url))
                channel = self._conn.channel()
                channel.basic_qos(prefetch_count=self._prefetch)
                self._declare(channel)
                channel.basic_consume(queue=self.queue, on_message_callback=self._on_message)
                self.connected.set()
                while not self._stop.is_set():
                    self._conn.process_data_events(time_limit=0.5)
            except Exception as exc:  # noqa: BLE001 - broker down: retry
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("consumer_disconnected", queue=self.queue, error=str(exc))
                    self._stop.wait(1.0)
            finally:
                if self._conn is not None and self._conn.is_open:
                    try:
                        self._conn.close()
                    except Exception:  # noqa: BLE001
                        pass

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run_forever, name=f"consumer-{self.queue}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the loop to end."""
        self._stop.set()

    def replay_dead_letters(self, limit: int = 1000) -> int:
        """Move dead-lettered messages back to the queue; returns how many."""
        conn = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            channel = conn.channel()
            self._declare(channel)
            moved = 0
            while moved < limit:
                method, _props, body = channel.basic_get(queue=self.queue + ".dlq", auto_ack=False)
                if method is None:
                    break
                channel.basic_publish(
                    exchange="", routing_key=self.queue, body=body, properties=pika.BasicProperties(delivery_mode=2)
                )
                channel.basic_ack(method.delivery_tag)
                moved += 1
            return moved
        finally:
            conn.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout`; for start-up and tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
