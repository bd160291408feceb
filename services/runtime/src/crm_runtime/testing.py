"""Test support: a real SecantusDB server process and RabbitMQ checks.

Integration tests run against real servers. `start_store()` launches a
SecantusDB process (the `secantusd-py` executable from the project's store
virtualenv, never imported) on a free port with in-memory storage.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from pymongo import MongoClient

from crm_runtime.store import DEFAULT_CACHE, store_command, store_env

TEST_INTERNAL_SECRET = "test-internal-secret-0123456789abcdef-0123"
"""The principal-token secret of every test process (set as CRM_INTERNAL_SECRET by the root conftest)."""


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StoreProcess:
    """A running SecantusDB server."""

    process: subprocess.Popen[bytes]
    port: int
    path: str

    @property
    def url(self) -> str:
        """Connection string for pymongo."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def stop(self) -> None:
        """Terminate and clean up."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.path, ignore_errors=True)


def start_store(timeout: float = 30.0, *, cache_size: str | None = None) -> StoreProcess:
    """Start SecantusDB on a free port with throw-away storage; wait until it answers.

    The same command as `make run` (crm_runtime.store: oplog cap, eviction thresholds);
    `cache_size` (e.g. "512M") replaces its 4G WiredTiger cache.
    """
    port = free_port()
    path = tempfile.mkdtemp(prefix="crm-store-")
    command = store_command(port=port, path=os.path.join(path, "db"), cache_size=cache_size or DEFAULT_CACHE)
    log = open(os.path.join(path, "server.log"), "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=store_env())
    store = StoreProcess(proc, port, path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"SecantusDB exited with {proc.returncode}; see {path}/server.log")
        try:
            MongoClient(store.url, serverSelectionTimeoutMS=500).admin.command("ping")
            return store
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    store.stop()
    raise RuntimeError("SecantusDB did not start in time")


def amqp_url() -> str:
    """The broker URL tests use."""
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
