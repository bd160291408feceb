"""The local store: SecantusDB started as its own process (never imported: it is GPL-2.0), with our settings.

`make run` (Procfile) and the test launcher start every local store through
`store_command`, so both run it the same way:

    python -m crm_runtime.store --port 27017 --path .data/mongo-record --cache-size 4G

Settings, each measured (docs/DESIGN_NOTES.md, "Loading a million records"):

- `--cache-size`: WiredTiger's cache (a maximum; the default is 1G);
- `--oplog-max-entries`: the oplog's default 100,000-entry cap makes every commit
  prune, and we read no change streams, so the time retention (1 hour) prunes;
- `WiredTiger.config` in the store's home, which WiredTiger reads each time it
  opens the database: the eviction thresholds. A bulk load writes index entries
  all over the keyword and field indexes, so nearly every index page is dirty;
  with WiredTiger's defaults, once dirty pages reach 20 % of the cache every
  request thread is drafted into eviction and a load wedged (at ~8,000 records
  with a 256M cache, ~240,000 with 4G). Letting dirty pages fill most of the
  cache before that, the same load goes on past a full cache (reading and
  writing pages as a B-tree larger than its cache does).
- `MALLOC_ARENA_MAX=2` in its environment: the store serves each connection on
  its own thread, and glibc gave those threads their own malloc arenas (101
  regions of 64 MiB in a store loading 500,000 records with a 4G cache);
  two arenas left less memory stranded in them (449 -> 392 MiB after the same
  24,000 documents into a 256M cache) at the same insert rate.

Real MongoDB (docker-compose, Kubernetes) is configured by its own charts; none of this applies there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

OPLOG_MAX_ENTRIES = "20000000"
DEFAULT_CACHE = "4G"
WIREDTIGER_CONFIG = (
    # WiredTiger's defaults: eviction_target 80, eviction_trigger 95, eviction_dirty_target 5, eviction_dirty_trigger 20
    "eviction_target=90,eviction_trigger=97,eviction_dirty_target=70,eviction_dirty_trigger=90\n"
)
"""Written to `<home>/WiredTiger.config` before every start (it must end in a newline)."""


def secantusd() -> str:
    """The `secantusd-py` executable: $SECANTUSD, the project's .venv-store, or the PATH."""
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


def store_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The store process's environment: `base` (default: ours) with MALLOC_ARENA_MAX=2 unless set."""
    env = dict(os.environ if base is None else base)
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


def prepare_home(path: str | os.PathLike[str]) -> None:
    """Create the store's home if needed and (re)write its WiredTiger.config."""
    home = Path(path)
    home.mkdir(parents=True, exist_ok=True)
    (home / "WiredTiger.config").write_text(WIREDTIGER_CONFIG)


def store_command(
    *,
    port: int,
    path: str | os.PathLike[str],
    cache_size: str = DEFAULT_CACHE,
    host: str = "127.0.0.1",
    log_level: str | None = None,
) -> list[str]:
    """Prepare the home and return the command line that starts a store on it."""
    prepare_home(path)
    argv = [
        secantusd(),
        "--host",
        host,
        "--port",
        str(port),
        "--storage-path",
        str(path),
        "--oplog-max-entries",
        OPLOG_MAX_ENTRIES,
        "--cache-size",
        cache_size,
    ]
    if log_level:
        argv += ["--log-level", log_level]
    return argv


def main(argv: list[str] | None = None) -> None:
    """`python -m crm_runtime.store`: prepare the home, then become the store process (exec)."""
    parser = argparse.ArgumentParser(prog="python -m crm_runtime.store", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="the store's home directory")
    parser.add_argument("--cache-size", default=DEFAULT_CACHE, help=f"WiredTiger cache (default {DEFAULT_CACHE})")
    parser.add_argument("--log-level", default=None)
    args = parser.parse_args(argv)
    command = store_command(
        port=args.port, path=args.path, cache_size=args.cache_size, host=args.host, log_level=args.log_level
    )
    sys.stdout.flush()
    os.execve(command[0], command, store_env())


if __name__ == "__main__":
    main()
