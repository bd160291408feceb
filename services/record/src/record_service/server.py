"""Wiring of the record service: store, form source, service, servicer, gRPC server; and the relay.

Shared by `python -m record_service serve|relay` and the integration tests, so
the tests exercise the production wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import MongoClient
from pymongo.database import Database

from crm_runtime import build_server, get_logger
from crm_runtime.events import EventConsumer, EventPublisher, OutboxRelay
from crm_runtime.grpc_server import ServerBundle
from crm_runtime.mongo import ping, wait_for_store
from record_service.api.servicer import SERVICE_NAME, RecordServicer
from record_service.domain.forms import FormSource
from record_service.domain.repository import AttachmentLookup, Cipher, no_attachments
from record_service.domain.service import RecordService
from record_service.events import ENVELOPE_FIELD, EXCHANGE, envelopes_of
from record_service.store.directory import MongoDirectory
from record_service.store.repository import MongoRecordRepository

log = get_logger("record.server")


def connect_store(url: str, db_name: str, *, attempts: int = 60, delay: float = 1.0) -> Database[Any]:
    """Connect and wait until the store answers.

    The record service uses pymongo only (no mongoengine models), so it opens a
    plain client with the runtime's options instead of registering an alias.
    """
    client: MongoClient[Any] = MongoClient(
        url, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000
    )
    db = client[db_name]
    return wait_for_store(db, attempts=attempts, delay=delay)


@dataclass
class RecordServer:
    """A built (not started) record service."""

    bundle: ServerBundle
    service: RecordService
    repo: MongoRecordRepository
    servicer: RecordServicer
    consumers: list[EventConsumer] = field(default_factory=list)
    directory: MongoDirectory | None = None

    def start(self) -> None:
        """Start the consumers and the gRPC server (tests; `serve` uses serve_forever)."""
        for consumer in self.consumers:
            consumer.start()
        self.bundle.server.start()
        self.bundle.refresh_health()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and consuming."""
        for consumer in self.consumers:
            consumer.stop()
        self.bundle.server.stop(grace).wait()


def build_record_server(
    db: Database[Any],
    *,
    port: int,
    forms: FormSource,
    cipher: Cipher,
    tz: ZoneInfo,
    consumers: list[EventConsumer] | None = None,
    extras: Any = None,
    attachments: AttachmentLookup = no_attachments,
    host: str | None = None,
) -> RecordServer:
    """Indexes ensured, service over the Mongo repository and the user directory replica, servicer registered.

    The directory's consumer of the gateway's user events is built by `serve`
    (store/directory.py: directory_consumer) and passed in `consumers`.
    """
    repo = MongoRecordRepository(db)
    repo.ensure_indexes()
    directory = MongoDirectory(db)
    service = RecordService(repo, forms, cipher, tz=tz, attachments=attachments, directory=directory)
    servicer = RecordServicer(service, extras)
    bundle = build_server(port, [servicer.register], [SERVICE_NAME], checks=[lambda: ping(db)], host=host)
    return RecordServer(bundle, service, repo, servicer, list(consumers or []), directory)


def build_relay(db: Database[Any], amqp_url: str, *, poll_interval: float = 0.2) -> OutboxRelay:
    """The outbox relay over the history collection (its entries carry the envelopes)."""
    history = db["history"]
    OutboxRelay.ensure_indexes(history)
    return OutboxRelay(
        history,
        EventPublisher(amqp_url, EXCHANGE),
        envelope_field=ENVELOPE_FIELD,
        poll_interval=poll_interval,
        expand=envelopes_of,  # a bulk create's batch entry is one event per record
    )


class RelayHealth:
    """Readiness of the relay process for the side HTTP port: store reachable and last publish ok."""

    def __init__(self, db: Database[Any], relay: OutboxRelay) -> None:
        self._db = db
        self._relay = relay

    def ready(self) -> bool:
        """True when the store answers and the relay is not failing."""
        return self._relay.healthy and ping(self._db)
