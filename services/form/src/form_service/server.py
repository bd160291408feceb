"""Wiring of the form service: store, engine, servicer, gRPC server and outbox relay.

Shared by `python -m form_service serve` and the integration tests, so the
tests exercise the production wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mongoengine
from pymongo.database import Database

from crm_runtime import build_server, get_logger
from crm_runtime.events import EventPublisher, OutboxRelay
from crm_runtime.grpc_server import ServerBundle
from crm_runtime.mongo import connect, ping, wait_for_store
from form_service.api.servicer import SERVICE_NAME, FormServicer
from form_service.domain.service import FormEngine
from form_service.events import EXCHANGE, OUTBOX_ENVELOPE_FIELD
from form_service.store.documents import ALIAS, OutboxDocument
from form_service.store.repository import MongoFormRepository, ensure_indexes

log = get_logger("form.server")


def connect_store(url: str, db_name: str, *, attempts: int = 60, delay: float = 1.0) -> Database[Any]:
    """Connect (registering the mongoengine alias) and wait until the store answers."""
    mongoengine.disconnect(ALIAS)  # a re-connect in the same process (tests) replaces the alias
    db = connect(url, db_name, alias=ALIAS)
    return wait_for_store(db, attempts=attempts, delay=delay)


@dataclass
class FormServer:
    """A built (not started) form service: the gRPC bundle and the outbox relay."""

    bundle: ServerBundle
    relay: OutboxRelay
    engine: FormEngine

    def start(self) -> None:
        """Start the relay thread and the gRPC server (tests; `serve` uses serve_forever)."""
        self.relay.start()
        self.bundle.server.start()
        self.bundle.refresh_health()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and relaying."""
        self.relay.stop()
        self.bundle.server.stop(grace).wait()


def build_form_server(db: Database[Any], *, port: int, amqp_url: str, host: str | None = None) -> FormServer:
    """Indexes ensured, engine over the Mongo repository, servicer registered, relay ready."""
    ensure_indexes()
    engine = FormEngine(MongoFormRepository(db))
    servicer = FormServicer(engine)
    relay = OutboxRelay(
        OutboxDocument._get_collection(), EventPublisher(amqp_url, EXCHANGE), envelope_field=OUTBOX_ENVELOPE_FIELD
    )
    bundle = build_server(port, [servicer.register], [SERVICE_NAME], checks=[lambda: ping(db)], host=host)
    return FormServer(bundle, relay, engine)
