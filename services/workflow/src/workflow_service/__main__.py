"""`python -m workflow_service serve|worker|relay`: the gRPC API, the nameko worker (event handlers,
timers), or the relay of its outbox (its own events, on `workflow.events`).

The two never share a process: grpcio's server does not run under eventlet.
The worker patches the standard library for eventlet first, before anything
imports a socket, and leaves threads alone, so that the engine's calls can run
on real threads (eventlet's tpool) with real locks for pymongo and grpc.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    import eventlet

    eventlet.monkey_patch(thread=False)

import argparse  # noqa: E402 - after the worker's monkey patching
import signal  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from crm_runtime import configure_logging, get_logger  # noqa: E402
from crm_runtime.config import ConfigError  # noqa: E402

log = get_logger("workflow.main")


def serve() -> None:
    """Connect, ensure indexes, serve the WorkflowService gRPC API until SIGTERM."""
    from crm_runtime import serve_forever
    from workflow_service.server import build_wiring, build_workflow_server, connect_store
    from workflow_service.settings import Settings

    settings = Settings.from_env()
    configure_logging("workflow", settings.log_level)
    db = connect_store(settings.mongo_url, settings.workflow_db)
    server = build_workflow_server(build_wiring(db, settings), db, port=settings.grpc_port)
    serve_forever(server.bundle, settings.http_port)


def worker() -> None:
    """Run the nameko worker until SIGTERM/SIGINT; /healthz /readyz /metrics on WORKER_HTTP_PORT."""
    import eventlet
    from nameko.runners import ServiceRunner

    from crm_runtime.grpc_server import start_side_http
    from workflow_service.settings import Settings
    from workflow_service.worker.dependencies import HEALTH
    from workflow_service.worker.service import WorkflowWorker

    settings = Settings.from_env()
    configure_logging("workflow-worker", settings.log_level)
    name = f"{settings.queue_prefix}workflow"
    # queue names derive from the service name: one prefix per installation on a shared broker
    service = type("WorkflowWorker", (WorkflowWorker,), {"name": name}) if settings.queue_prefix else WorkflowWorker
    amqp = settings.amqp_url.replace("%2F", "")
    runner = ServiceRunner(config={"AMQP_URI": amqp, "max_workers": 10, "serializer": "json"})
    runner.add_service(service)
    stale_after = max(30.0, 10 * settings.timer_interval)

    class _Ready:
        def ready(self) -> bool:
            # ready while the timer's sweeps reach the store (the side port runs on its own OS thread, where
            # the engine's green connections cannot be used)
            return time.monotonic() - HEALTH["last_sweep"] < stale_after

    httpd = start_side_http(_Ready(), settings.worker_http_port)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signum)
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runner.start()
    log.info("worker_started", service=name, http_port=settings.worker_http_port)
    runner.wait()
    httpd.shutdown()
    log.info("worker_stopped")


def relay() -> None:
    """Publish the workflow's outbox with confirms until SIGTERM; /healthz /readyz /metrics on its side port."""
    import threading

    from crm_runtime.grpc_server import start_side_http
    from crm_runtime.mongo import ping
    from workflow_service.outbox import build_relay
    from workflow_service.server import connect_store
    from workflow_service.settings import Settings

    settings = Settings.from_env()
    configure_logging("workflow-relay", settings.log_level)
    db = connect_store(settings.mongo_url, settings.workflow_db)
    outbox_relay = build_relay(db, settings.amqp_url)

    class _Ready:
        def ready(self) -> bool:
            return outbox_relay.healthy and ping(db)

    httpd = start_side_http(_Ready(), settings.relay_http_port)
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


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="workflow_service", description="The workflow service.")
    parser.add_argument("command", choices=["serve", "worker", "relay"])
    args = parser.parse_args(argv)
    try:
        {"serve": serve, "worker": worker, "relay": relay}[args.command]()
    except ConfigError as exc:
        raise SystemExit(f"workflow_service: configuration error: {exc}") from None


if __name__ == "__main__":
    main()
