"""`python -m gateway serve`: gunicorn (gthread workers) run programmatically.

The master seeds the installation in a child process (so it never opens a
gRPC channel or a MongoDB client that would then cross a fork), then forks the
workers; each worker builds its own app, so its store client and gRPC channels
are created after the fork. With several workers, Prometheus runs in
multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set (by `gateway.__main__`,
before prometheus_client is imported) and emptied at start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from crm_runtime.logging import configure_logging, get_logger
from gateway.server_errors import install as install_problem_writer
from gateway.settings import Settings

log = get_logger("crm.gateway")


def _child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _post_fork(server: Any, _worker: Any) -> None:
    configure_logging("gateway", os.environ.get("LOG_LEVEL", "INFO"))
    # what gunicorn refuses itself (a 414 request line, a malformed header) is problem+json too
    install_problem_writer(server.cfg)


class GatewayServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application that builds the Flask app in each worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        """gunicorn settings from ours."""
        s = self.settings
        options = {
            "bind": f"0.0.0.0:{s.port}",
            "workers": s.workers,
            "worker_class": "gthread",
            "threads": s.threads,
            "timeout": 300,
            "graceful_timeout": 20,
            "keepalive": 5,
            # gunicorn's maximum: room for a GET filter; longer ones get a 414 problem naming POST …/query
            "limit_request_line": 8190,
            "preload_app": False,
            "loglevel": s.log_level.lower(),
            "child_exit": _child_exit,
            "post_fork": _post_fork,
            "proc_name": "crm-gateway",
            # several gateways (tests, e2e) may run on one machine: no shared control socket
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Called in each worker: a fresh app with its own clients."""
        from gateway.app import create_app

        return create_app({"GATEWAY_SETTINGS": self.settings, "GATEWAY_ENSURE_INDEXES": False})


def run_seed() -> int:
    """Run `python -m gateway seed` in a child process; returns its exit code."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run([sys.executable, "-m", "gateway", "seed"], env=env, check=False).returncode


def serve() -> None:
    """Seed, then serve until SIGTERM."""
    settings = Settings.from_env()
    configure_logging("gateway", settings.log_level)
    code = run_seed()
    if code != 0:
        # the directory part failing (store down) is fatal; a missing template is reported and retried next start
        log.error("seed_failed", exit_code=code)
        if code == 1:
            sys.exit(1)
    log.info("gateway_serving", port=settings.port, workers=settings.workers, threads=settings.threads)
    GatewayServer(settings).run()
