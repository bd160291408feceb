"""All wiring of the record service: store, form client, use cases, servicer, gRPC server; and the relay.

    build_use_cases      the domain's use cases over their ports (unit tests pass fakes)
    build_record_server  the store adapters (store/), the use cases and the one servicer on a gRPC server
    build_relay          the outbox relay over the history collection

Shared by `python -m record_service serve|relay` and the integration tests, so
the tests exercise the production wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from pymongo import MongoClient
from pymongo.database import Database

from crm_runtime import build_server, get_logger
from crm_runtime.events import EventConsumer, EventPublisher, OutboxRelay
from crm_runtime.grpc_server import ServerBundle
from crm_runtime.mongo import ping, wait_for_store
from record_service.api.servicer import SERVICE_NAME, RecordServicer, UseCases
from record_service.domain.attachments import Uploads
from record_service.domain.bulk import BulkCreate
from record_service.domain.core import RecordCore
from record_service.domain.directory import Directory
from record_service.domain.duplicates import DuplicateFinder
from record_service.domain.forms import FormCatalog, FormSource, ListingFormSource, SourceCatalog
from record_service.domain.history import History
from record_service.domain.listing import Listing
from record_service.domain.merge import RecordMerger
from record_service.domain.records import Records
from record_service.domain.rendering import Renderer
from record_service.domain.repository import Cipher, FileStore, HistoryReader, RecordQueries, RecordRepository
from record_service.domain.sharing import Sharing
from record_service.domain.times import utc_now
from record_service.domain.view360 import Record360
from record_service.events import ENVELOPE_FIELD, EXCHANGE, envelopes_of
from record_service.store.attachments import AttachmentStore
from record_service.store.directory import MongoDirectory
from record_service.store.history import MongoHistoryReader
from record_service.store.planner import StoreQueries
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


def catalog_of(forms: FormSource) -> FormCatalog:
    """The FormCatalog of a form source: the form client itself (CachedFormSource), or its `list_published`."""
    if hasattr(forms, "published_forms"):
        return cast(FormCatalog, forms)
    if hasattr(forms, "list_published"):
        return SourceCatalog(cast(ListingFormSource, forms))
    raise TypeError(f"{type(forms).__name__} cannot list a tenant's forms: pass a catalog")


def build_use_cases(
    repo: RecordRepository,
    forms: FormSource,
    cipher: Cipher,
    *,
    queries: RecordQueries,
    catalog: FormCatalog,
    history: HistoryReader,
    files: FileStore,
    tz: ZoneInfo | None = None,
    directory: Directory | None = None,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], str] | None = None,
    bulk_chunk: int | None = None,
) -> UseCases:
    """Every record use case over one RecordCore (the shared building blocks) and one Renderer."""
    core = RecordCore(
        repo, forms, cipher, tz=tz, clock=clock, attachments=files.lookup, new_id=new_id, directory=directory
    )
    renderer = Renderer(core)
    bulk = BulkCreate(core, queries) if bulk_chunk is None else BulkCreate(core, queries, chunk=bulk_chunk)
    return UseCases(
        records=Records(core, renderer, queries),
        bulk=bulk,
        listing=Listing(core, renderer, queries),
        history=History(core),
        sharing=Sharing(core, renderer),
        view360=Record360(core, renderer, catalog, history),
        duplicates=DuplicateFinder(core, renderer),
        merge=RecordMerger(core, renderer, catalog),
        attachments=Uploads(core, files),
    )


@dataclass
class RecordServer:
    """A built (not started) record service."""

    bundle: ServerBundle
    use_cases: UseCases
    repo: MongoRecordRepository
    servicer: RecordServicer
    consumers: list[EventConsumer] = field(default_factory=list)
    directory: MongoDirectory | None = None
    files: AttachmentStore | None = None

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
    catalog: FormCatalog | None = None,
    host: str | None = None,
) -> RecordServer:
    """Indexes ensured, every use case over the Mongo adapters of the record database, the servicer registered.

    The store adapters: records, uniques and counters (store/repository.py), the
    query planner over them (store/planner.py), the history reader
    (store/history.py), the `attachments` GridFS bucket (store/attachments.py)
    and the user directory replica (store/directory.py). `catalog` lists a
    tenant's forms for the 360° view and merge (default: `forms` itself, see
    catalog_of). The directory's consumer of the gateway's user events and the
    form cache's consumer are built by `serve` and passed in `consumers`.
    """
    repo = MongoRecordRepository(db)
    repo.ensure_indexes()
    directory = MongoDirectory(db)
    files = AttachmentStore(db)
    use_cases = build_use_cases(
        repo,
        forms,
        cipher,
        queries=StoreQueries(repo),
        catalog=catalog if catalog is not None else catalog_of(forms),
        history=MongoHistoryReader(db),
        files=files,
        tz=tz,
        directory=directory,
    )
    servicer = RecordServicer(use_cases)
    bundle = build_server(port, [servicer.register], [SERVICE_NAME], checks=[lambda: ping(db)], host=host)
    return RecordServer(bundle, use_cases, repo, servicer, list(consumers or []), directory, files)


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
