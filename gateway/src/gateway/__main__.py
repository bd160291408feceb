"""`python -m gateway serve | seed`.

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
    from gateway.seed import install_crm_template, seed_directory
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
    services = Services.grpc(settings.form_grpc_addr, settings.record_grpc_addr, timeout=10.0)
    try:
        try:
            result = seed_directory(settings, store)
        except Exception as exc:  # noqa: BLE001 - exit code 1: the store part failed
            log.error("seed_directory_failed", error=str(exc))
            return 1
        try:
            install_crm_template(store, result, services.form)
        except Exception as exc:  # noqa: BLE001 - exit code 2: only the template is missing
            log.error("seed_template_failed", error=str(exc))
            return 2
    finally:
        store.db.client.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="gateway", description="The CRM REST gateway.")
    parser.add_argument("command", choices=["serve", "seed"])
    args = parser.parse_args(argv)
    if args.command == "seed":
        sys.exit(_seed())
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
