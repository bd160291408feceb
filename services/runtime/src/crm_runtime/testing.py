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
from pathlib import Path

from pymongo import MongoClient

TEST_INTERNAL_SECRET = "test-internal-secret-0123456789abcdef-0123"
"""The principal-token secret of every test process (set as CRM_INTERNAL_SECRET by the root conftest)."""


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _secantusd() -> str:
    explicit = os.environ.get("SECANTUSD")
    if explicit:
        return explicit
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / ".venv-store" / "bin" / "secantusd-py"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("secantusd-py")
    if found:
        return found
    raise RuntimeError("secantusd-py not found: run `make deps` (it creates .venv-store)")


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


# Two SecantusDB settings for loads of 100,000 records (Procfile passes the same):
# - WiredTiger's cache defaults to 1G; past ~30,000 customers (18 indexes, a
#   multikey keyword index) a 1,000-record bulk transaction stalled for over
#   600 s. With 4G the same load runs at a steady ~60 s per 10,000.
# - The oplog is capped at 100,000 entries and then pruned on every commit;
#   sampled commits spent their time in that prune walk. We read no change
#   streams: a larger cap leaves the pruning to the time retention (1 hour).
# The cache is a maximum; the stores of small databases (the form service's,
# the gateway's) get a smaller one, as in `make run` (Procfile).
STORE_ARGS = ("--oplog-max-entries", "20000000", "--cache-size", "4G")


def start_store(timeout: float = 30.0, *, cache_size: str | None = None) -> StoreProcess:
    """Start SecantusDB on a free port with throw-away storage; wait until it answers.

    `cache_size` (e.g. "512M") replaces the 4G WiredTiger cache of STORE_ARGS.
    """
    args = list(STORE_ARGS)
    if cache_size is not None:
        args[args.index("--cache-size") + 1] = cache_size
    port = free_port()
    path = tempfile.mkdtemp(prefix="crm-store-")
    log = open(os.path.join(path, "server.log"), "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [
            _secantusd(),
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            os.path.join(path, "db"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
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
