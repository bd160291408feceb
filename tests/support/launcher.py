"""Start the whole platform as separate processes, as `make run` does.

Used by the end-to-end tests and the benchmarks: one private SecantusDB server
per owning service (record, form, gateway) on free ports, the form service,
the record service, the outbox relays and the gateway, each its own process on
free ports, against the real RabbitMQ. The units are supervised like under
`make run` (crm_runtime.supervise): one that exits is restarted with backoff, so
a test can kill -9 a unit and see it come back.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography.fernet import Fernet

from crm_runtime.supervise import Backoff, Supervisor, Unit
from crm_runtime.testing import StoreProcess, amqp_url, free_port, start_store

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["STORE_CACHE", "Platform", "Unit", "start_platform"]

STORE_CACHE = {"record": "4G", "form": "256M", "gateway": "512M", "workflow": "512M"}
"""WiredTiger cache (a maximum) of each service's store: the records need the 4G (bulk loads), the others are small."""


@dataclass
class Platform:
    """A running platform; `base_url` is the gateway.

    `stores` holds each owning service's SecantusDB ("record", "form", "gateway"); `store` is the record
    service's (the records, history and outbox), the one tests and benchmarks read directly.
    """

    store: StoreProcess
    units: dict[str, Unit]
    env: dict[str, str]
    data_dir: Path
    admin_password: str
    gateway_port: int
    extra: dict[str, str] = field(default_factory=dict)
    stores: dict[str, StoreProcess] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    _supervisor_log: TextIO | None = None

    @property
    def base_url(self) -> str:
        """The gateway's root URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    def logs(self, name: str) -> str:
        """The tail of a unit's log, for failure messages."""
        path = self.units[name].log_path
        assert path is not None
        return path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop every unit, then the stores; drop this platform's durable queues from the shared broker."""
        if self.supervisor is not None:
            self.supervisor.stop()
        if self._supervisor_log is not None:
            self._supervisor_log.close()
        for store in self.stores.values() or [self.store]:
            store.stop()
        _delete_queues(
            self.env["AMQP_URL"],
            [
                self.env["RECORD_DIRECTORY_QUEUE"],
                self.env["RECORD_DIRECTORY_QUEUE"] + ".dlq",
                self.env["RECORD_POOL_QUEUE"],
                self.env["RECORD_POOL_QUEUE"] + ".dlq",
                *workflow_queues(self.env["WORKFLOW_QUEUE_PREFIX"]),
            ],
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)


WORKFLOW_HANDLERS = {
    "record": ("record.created", "record.updated", "record.deleted", "record.owner_changed"),
    "gateway": ("user.created", "user.updated", "user.deleted"),
}
"""The events the workflow worker handles, by publishing service (its nameko queues)."""


def workflow_queues(prefix: str) -> list[str]:
    """The durable queues the workflow worker of one platform declares (nameko's naming)."""
    names = []
    for source, types in WORKFLOW_HANDLERS.items():
        for event_type in types:
            handler = "on_" + event_type.replace(".", "_")
            handler = handler.replace("on_record_record_", "on_record_").replace("on_user_user_", "on_user_")
            names.append(f"evt-{source}-{event_type}--{prefix}workflow.{handler}")
    return names


def _wait_ready(url: str, timeout: float, units: dict[str, Unit]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for unit in units.values():
            # at start-up an exit is a broken platform, not a crash to ride out
            if unit.exits:
                assert unit.log_path is not None
                raise RuntimeError(f"{unit.name} exited with {unit.exits[0]}:\n" + unit.log_path.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {timeout} s")


def _delete_queues(url: str, names: list[str]) -> None:
    """Delete queues (missing ones are fine); a broker that is down leaves them."""
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except Exception:  # noqa: BLE001 - best effort clean-up
        return
    try:
        for name in names:
            conn.channel().queue_delete(queue=name)
    except Exception:  # noqa: BLE001 - best effort clean-up
        pass
    finally:
        conn.close()


def _start_stores() -> dict[str, StoreProcess]:
    stores: dict[str, StoreProcess] = {}
    try:
        for service, cache in STORE_CACHE.items():
            stores[service] = start_store(cache_size=cache)
    except Exception:
        for store in stores.values():
            store.stop()
        raise
    return stores


def start_platform(*, timeout: float = 120.0, gateway_workers: int | None = None) -> Platform:
    """Start the stores, services, relays and gateway under a supervisor; return when the gateway is ready."""
    stores = _start_stores()
    data_dir = Path(tempfile.mkdtemp(prefix="crm-platform-"))
    password = "Adm1n-" + secrets.token_urlsafe(8)
    form_grpc, record_grpc, workflow_grpc, gateway_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        # MONGO_URL is the record database (what tests and bench read); each service has its own URL
        "MONGO_URL": stores["record"].url,
        "RECORD_MONGO_URL": stores["record"].url,
        "FORM_MONGO_URL": stores["form"].url,
        "GATEWAY_MONGO_URL": stores["gateway"].url,
        "WORKFLOW_MONGO_URL": stores["workflow"].url,
        "AMQP_URL": amqp_url(),
        "FORM_GRPC_ADDR": f"127.0.0.1:{form_grpc}",
        "RECORD_GRPC_ADDR": f"127.0.0.1:{record_grpc}",
        "WORKFLOW_GRPC_ADDR": f"127.0.0.1:{workflow_grpc}",
        # its own worker queues on the shared broker; short timer and retry pauses for tests
        "WORKFLOW_QUEUE_PREFIX": f"test{secrets.token_hex(4)}-",
        "WORKFLOW_TIMER_INTERVAL": os.environ.get("WORKFLOW_TIMER_INTERVAL", "0.5"),
        "WORKFLOW_RETRY_BASE": os.environ.get("WORKFLOW_RETRY_BASE", "0.5"),
        # the tests' webhooks are local HTTP servers
        "WORKFLOW_WEBHOOK_ALLOW_PRIVATE": "1",
        "GATEWAY_PORT": str(gateway_port),
        "CRM_DATA_DIR": str(data_dir),
        "CRM_ADMIN_PASSWORD": password,
        "JWT_SECRET": secrets.token_urlsafe(32),
        "CRM_INTERNAL_SECRET": os.environ.get("CRM_INTERNAL_SECRET") or secrets.token_urlsafe(32),
        # one broker serves every platform on this machine: each its own durable directory queue
        "RECORD_DIRECTORY_QUEUE": f"record.directory.test-{secrets.token_hex(6)}",
        "RECORD_POOL_QUEUE": f"record.pools.test-{secrets.token_hex(6)}",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "TENANT_TZ": "Asia/Shanghai",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if gateway_workers is not None:
        env["GATEWAY_WORKERS"] = str(gateway_workers)
    py = sys.executable
    specs = {
        "form": ([py, "-m", "form_service", "serve"], {"GRPC_PORT": str(form_grpc), "HTTP_PORT": str(free_port())}),
        "record": (
            [py, "-m", "record_service", "serve"],
            {"GRPC_PORT": str(record_grpc), "HTTP_PORT": str(free_port())},
        ),
        "relay": ([py, "-m", "record_service", "relay"], {"RELAY_HTTP_PORT": str(free_port())}),
        "workflow": (
            [py, "-m", "workflow_service", "serve"],
            {"GRPC_PORT": str(workflow_grpc), "HTTP_PORT": str(free_port())},
        ),
        "workflow-worker": ([py, "-m", "workflow_service", "worker"], {"WORKER_HTTP_PORT": str(free_port())}),
        "workflow-relay": ([py, "-m", "workflow_service", "relay"], {"WORKFLOW_RELAY_HTTP_PORT": str(free_port())}),
        "gateway-relay": ([py, "-m", "gateway", "relay"], {}),
        "gateway": ([py, "-m", "gateway", "serve"], {}),
    }
    units = {
        name: Unit(name, args, {**env, **extra}, log_path=data_dir / f"{name}.log", cwd=ROOT)
        for name, (args, extra) in specs.items()
    }
    log = open(data_dir / "supervisor.log", "a")  # noqa: SIM115 - closed in Platform.stop()
    supervisor = Supervisor(list(units.values()), out=log, backoff=Backoff(), colour=False)
    platform = Platform(
        stores["record"],
        units,
        env,
        data_dir,
        password,
        gateway_port,
        stores=stores,
        supervisor=supervisor,
        _supervisor_log=log,
    )
    supervisor.start()
    try:
        _wait_ready(f"{platform.base_url}/readyz", timeout, units)
    except Exception:  # noqa: BLE001 - add the logs, then re-raise
        logs = "\n".join(f"--- {n}\n{platform.logs(n)}" for n in units)
        platform.stop()
        raise RuntimeError("platform did not start:\n" + logs) from None
    return platform
