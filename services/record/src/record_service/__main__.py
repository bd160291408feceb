"""`python -m record_service serve|relay`: the gRPC server, or the outbox relay as its own process."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any
from zoneinfo import ZoneInfo

from crm_runtime import configure_logging, get_logger, serve_forever
from crm_runtime.config import ConfigError
from crm_runtime.grpc_server import start_side_http
from record_service.crypto import FernetCipher
from record_service.forms.grpc_source import CachedFormSource, GrpcFormSource
from record_service.forms.invalidation import form_cache_consumer
from record_service.server import RelayHealth, build_record_server, build_relay, connect_store
from record_service.settings import Settings
from record_service.store.directory import MongoDirectory, directory_consumer
from record_service.store.pools import pool_consumer

log = get_logger("record.main")


def serve() -> None:
    """Connect, ensure indexes, start the form-cache and user-directory consumers, serve gRPC until SIGTERM."""
    settings = Settings.from_env()
    configure_logging("record", settings.log_level)
    cipher = FernetCipher(settings.require_encryption_key())
    db = connect_store(settings.mongo_url, settings.record_db)
    forms = CachedFormSource(GrpcFormSource(settings.form_grpc_addr))
    consumer = form_cache_consumer(settings.amqp_url, forms, db)
    users = directory_consumer(settings.amqp_url, MongoDirectory(db), db, queue=settings.directory_queue)
    pools = pool_consumer(settings.amqp_url, db, queue=settings.pool_queue)
    server = build_record_server(
        db,
        port=settings.grpc_port,
        forms=forms,
        cipher=cipher,
        tz=ZoneInfo(settings.tenant_tz),
        consumers=[consumer, users, pools],
    )
    consumer.start()
    users.start()
    pools.start()

    def stop_consumers() -> None:
        consumer.stop()
        users.stop()
        pools.stop()

    serve_forever(server.bundle, settings.http_port, on_stop=stop_consumers)


def relay() -> None:
    """Publish the outbox with confirms until SIGTERM; /healthz /readyz /metrics on RELAY_HTTP_PORT."""
    settings = Settings.from_env()
    configure_logging("record-relay", settings.log_level)
    db = connect_store(settings.mongo_url, settings.record_db)
    outbox_relay = build_relay(db, settings.amqp_url)
    httpd = start_side_http(RelayHealth(db, outbox_relay), settings.relay_http_port)
    stop = threading.Event()

    def _signal(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signum)
        outbox_relay.stop()
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    log.info("relay_started", http_port=settings.relay_http_port)
    outbox_relay.run_forever()
    httpd.shutdown()
    log.info("relay_stopped")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="record_service", description="The record service.")
    parser.add_argument("command", choices=["serve", "relay"])
    args = parser.parse_args(argv)
    try:
        serve() if args.command == "serve" else relay()
    except ConfigError as exc:
        raise SystemExit(f"record_service: configuration error: {exc}") from None


if __name__ == "__main__":
    main()
