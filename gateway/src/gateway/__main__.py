"""`python -m gateway serve | seed | relay | tenant ...`.

`tenant create | list | install-template` manages tenants (gateway.tenants).

`relay` publishes the gateway outbox (user.* directory events) to the
`gateway.events` exchange until SIGTERM (gateway.outbox).

The Prometheus multiprocess directory must be in the environment before
prometheus_client is first imported (crm_runtime imports it), so `serve` sets
it here, ahead of every other import of ours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _prepare_multiprocess_metrics() -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    else:
        base = os.environ.get("CRM_DATA_DIR") or tempfile.gettempdir()
        path = Path(base) / f"prometheus-gateway-{os.environ.get('GATEWAY_PORT', '8080')}"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # stale files from a previous run would be summed into this one's metrics
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def _seed() -> int:
    from crm_runtime.config import ConfigError
    from crm_runtime.logging import configure_logging, get_logger
    from gateway.clients import Services
    from gateway.seed import install_crm_template, install_workflow_template, seed_directory
    from gateway.settings import Settings
    from gateway.store import GatewayStore

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"gateway seed: {exc}", file=sys.stderr)
        return 1
    configure_logging("gateway", settings.log_level)
    log = get_logger("crm.gateway.seed")
    store = GatewayStore.connect(settings.mongo_url, settings.gateway_db)
    services = Services.grpc(
        settings.form_grpc_addr, settings.record_grpc_addr, settings.workflow_grpc_addr, timeout=10.0
    )
    try:
        try:
            result = seed_directory(settings, store)
        except Exception as exc:  # noqa: BLE001 - exit code 1: the store part failed
            log.error("seed_directory_failed", error=str(exc))
            return 1
        try:
            install_crm_template(store, result, services.form)
            # the automations name the template's forms: after them
            install_workflow_template(store, result.tenant_id, result.admin_id, services.workflow)
        except Exception as exc:  # noqa: BLE001 - exit code 2: only the template is missing
            log.error("seed_template_failed", error=str(exc))
            return 2
    finally:
        store.db.client.close()
    return 0


def _relay() -> int:
    import signal

    from crm_runtime.config import ConfigError
    from crm_runtime.logging import configure_logging, get_logger
    from gateway.outbox import build_relay
    from gateway.settings import Settings
    from gateway.store import GatewayStore

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"gateway relay: {exc}", file=sys.stderr)
        return 1
    configure_logging("gateway-relay", settings.log_level)
    log = get_logger("crm.gateway.relay")
    store = GatewayStore.connect(settings.mongo_url, settings.gateway_db)
    relay = build_relay(store, settings.amqp_url)

    def _signal(signum: int, _frame: object) -> None:
        log.info("shutdown_requested", signal=signum)
        relay.stop()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    log.info("relay_started")
    try:
        relay.run_forever()
    finally:
        store.db.client.close()
    log.info("relay_stopped")
    return 0


def _audit(argv: list[str]) -> int:
    """`gateway audit verify [--tenant KEY]`: walk the operation-log hash chains (exit 1 at a break)."""
    from crm_runtime.config import ConfigError
    from gateway.audit import AuditLog, verify_command
    from gateway.settings import Settings
    from gateway.store import GatewayStore

    parser = argparse.ArgumentParser(prog="gateway audit", description="The operation log.")
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("--tenant", help="one tenant key (default: every tenant with a log)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"gateway audit: {exc}", file=sys.stderr)
        return 2
    store = GatewayStore.connect(settings.mongo_url, settings.gateway_db)
    try:
        return verify_command(
            AuditLog(store.audit_log, store.audit_head, store.audit_settings), args.tenant, sys.stdout
        )
    finally:
        store.db.client.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    rest = sys.argv[1:] if argv is None else argv
    if rest[:1] == ["audit"]:  # `audit verify [--tenant KEY]` has arguments of its own
        sys.exit(_audit(rest[1:]))
    rest = sys.argv[1:] if argv is None else list(argv)
    if rest and rest[0] == "tenant":
        # `tenant create | list | install-template`: its own sub-commands (gateway.tenants)
        from gateway.tenants import tenant_main

        sys.exit(tenant_main(rest[1:]))
    parser = argparse.ArgumentParser(
        prog="gateway", description="The CRM REST gateway.", epilog="Tenants: python -m gateway tenant --help"
    )
    parser.add_argument("command", choices=["serve", "seed", "relay"])
    args = parser.parse_args(argv)
    if args.command == "seed":
        sys.exit(_seed())
    if args.command == "relay":
        sys.exit(_relay())
    workers = int(os.environ.get("GATEWAY_WORKERS") or 2)
    if workers > 1:
        _prepare_multiprocess_metrics()
    from crm_runtime.config import ConfigError
    from gateway.server import serve

    try:
        serve()
    except ConfigError as exc:
        print(f"gateway serve: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
