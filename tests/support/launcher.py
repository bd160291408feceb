"""Start the whole platform as separate processes, as `make run` does.

Used by the end-to-end tests and the benchmarks: a private SecantusDB server
on a free port, the form service, the record service, the outbox relay and the
gateway, each its own process on free ports, against the real RabbitMQ.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.fernet import Fernet

from crm_runtime.testing import StoreProcess, amqp_url, free_port, start_store

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Unit:
    """One running process of the platform."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch the process, logging to its file."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self, sig_timeout: float = 10.0) -> None:
        """Terminate gracefully, kill if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(sig_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Platform:
    """A running platform; `base_url` is the gateway."""

    store: StoreProcess
    units: dict[str, Unit]
    env: dict[str, str]
    data_dir: Path
    admin_password: str
    gateway_port: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The gateway's root URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    def logs(self, name: str) -> str:
        """The tail of a unit's log, for failure messages."""
        return self.units[name].log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop every unit, then the store; drop this platform's durable queues from the shared broker."""
        for unit in reversed(list(self.units.values())):
            unit.stop()
        self.store.stop()
        _delete_queues(
            self.env["AMQP_URL"], [self.env["RECORD_DIRECTORY_QUEUE"], self.env["RECORD_DIRECTORY_QUEUE"] + ".dlq"]
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_ready(url: str, timeout: float, units: dict[str, Unit]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for unit in units.values():
            if unit.process is not None and unit.process.poll() is not None:
                raise RuntimeError(
                    f"{unit.name} exited with {unit.process.returncode}:\n" + unit.log_path.read_text()[-3000:]
                )
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


def start_platform(*, timeout: float = 120.0, gateway_workers: int | None = None) -> Platform:
    """Start store, services, relay and gateway; return when the gateway is ready."""
    store = start_store()
    data_dir = Path(tempfile.mkdtemp(prefix="crm-platform-"))
    password = "Adm1n-" + secrets.token_urlsafe(8)
    form_grpc, record_grpc, gateway_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "MONGO_URL": store.url,
        "AMQP_URL": amqp_url(),
        "FORM_GRPC_ADDR": f"127.0.0.1:{form_grpc}",
        "RECORD_GRPC_ADDR": f"127.0.0.1:{record_grpc}",
        "GATEWAY_PORT": str(gateway_port),
        "CRM_DATA_DIR": str(data_dir),
        "CRM_ADMIN_PASSWORD": password,
        "JWT_SECRET": secrets.token_urlsafe(32),
        "CRM_INTERNAL_SECRET": os.environ.get("CRM_INTERNAL_SECRET") or secrets.token_urlsafe(32),
        # one broker serves every platform on this machine: each its own durable directory queue
        "RECORD_DIRECTORY_QUEUE": f"record.directory.test-{secrets.token_hex(6)}",
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
        "gateway-relay": ([py, "-m", "gateway", "relay"], {}),
        "gateway": ([py, "-m", "gateway", "serve"], {}),
    }
    units: dict[str, Unit] = {}
    for name, (args, extra) in specs.items():
        unit = Unit(name, args, {**env, **extra}, data_dir / f"{name}.log")
        unit.start()
        units[name] = unit
    platform = Platform(store, units, env, data_dir, password, gateway_port)
    try:
        _wait_ready(f"{platform.base_url}/readyz", timeout, units)
    except Exception:  # noqa: BLE001 - add the logs, then re-raise
        logs = "\n".join(f"--- {n}\n{platform.logs(n)}" for n in units)
        platform.stop()
        raise RuntimeError("platform did not start:\n" + logs) from None
    return platform
