"""A small process supervisor for `make run` and the test launcher (standard library only).

`honcho start` stops every process as soon as one exits, so a crash of one unit
(kill -9 of the relay) took the store, the services and the gateway down with it.
The supervisor instead restarts a unit that exits unexpectedly, after an
exponential backoff (1 s, 2 s, 4 s … capped at 30 s; back to 1 s once the unit
had been up for 60 s), and logs one line saying so, while the other units keep
serving. A one-shot unit (`ready`, the start-up announcement) may exit 0 without
being restarted. SIGINT/SIGTERM stop every unit: SIGTERM first, SIGKILL for the
process group of any unit still running after the timeout; units marked
"stop last" (the stores) are stopped only once the others have exited, so that
the services shut down against a live database.

    python -m crm_runtime.supervise -f Procfile --oneshot ready --stop-last record-store

Each unit runs in its own session (process group), so a terminal's Ctrl-C
reaches only the supervisor, which then stops the units in order; and the
leftovers of a crashed unit (gunicorn workers of a killed master) are killed
before it is started again. Output goes either to the supervisor's stream as
prefixed, coloured lines (like honcho) or, for the launcher, to a log file per unit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
"""ANSI foreground colours given to the units in turn (as honcho does)."""


@dataclass(frozen=True)
class Backoff:
    """The restart delay policy: `initial` · 2^n seconds, capped, with n reset after a long enough uptime."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        """The delay before the restart that follows `failures` consecutive short-lived runs (1 for the first)."""
        return float(min(self.cap, self.initial * 2 ** max(0, failures - 1)))


@dataclass
class Unit:
    """One supervised process: its command, environment and where its output goes.

    `args` is an argv list, or a string run by `/bin/sh -c` (a Procfile line).
    `process` is the current process (a new one after each restart); `exits`
    collects the return codes of every exit the supervisor saw. A `stop_last` unit is stopped after the others.
    """

    name: str
    args: Sequence[str] | str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_path: Path | None = None
    oneshot: bool = False
    stop_last: bool = False
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)
    done: bool = False
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    _log: IO[bytes] | None = None
    _reader: threading.Thread | None = None

    @property
    def argv(self) -> list[str]:
        """The argv the unit is started with."""
        if isinstance(self.args, str):
            return ["/bin/sh", "-c", self.args]
        return list(self.args)

    @property
    def running(self) -> bool:
        """Whether the current process is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the current process, as a crash (the supervisor restarts it)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """`name: command` lines of a Procfile, in order; blank lines and `#` comments are skipped."""
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"Procfile line {number} is not 'name: command': {raw!r}")
        entries.append((name.strip(), command.strip()))
    return entries


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process group of `proc` (its own session); a group already gone is fine."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    """Starts units, restarts the ones that exit unexpectedly, stops them all on request.

    `out` receives the supervisor's own lines and, for units without a log file,
    their prefixed output. `clock` and `poll_interval` are injectable for tests.
    """

    def __init__(
        self,
        units: Sequence[Unit],
        *,
        out: TextIO | None = None,
        backoff: Backoff | None = None,
        stop_timeout: float = 10.0,
        poll_interval: float = 0.1,
        colour: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.units: dict[str, Unit] = {u.name: u for u in units}
        self.out: TextIO = out or sys.stdout
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.colour = self.out.isatty() if colour is None else colour
        self.clock = clock
        self._width = max([len(n) for n in self.units] + [len("supervise")])
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ output

    def _prefix(self, name: str) -> str:
        label = f"{time.strftime('%H:%M:%S')} {name.ljust(self._width)} |"
        if not self.colour:
            return label
        names = list(self.units)
        code = COLOURS[names.index(name) % len(COLOURS)] if name in self.units else 1
        return f"\033[{code}m{label}\033[0m"

    def say(self, message: str, unit: Unit | None = None) -> None:
        """One line of the supervisor's own, also appended to the unit's log file when it has one."""
        with self._lock:
            self.out.write(f"{self._prefix('supervise')} {message}\n")
            self.out.flush()
        if unit is not None and unit._log is not None:
            unit._log.write(f"[supervise] {message}\n".encode())
            unit._log.flush()

    def _pump(self, unit: Unit, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                self.out.write(f"{self._prefix(unit.name)} {line}\n")
                self.out.flush()
        stream.close()

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, unit: Unit) -> None:
        if unit.log_path is not None:
            if unit._log is None:
                unit._log = open(unit.log_path, "ab")  # noqa: SIM115 - closed in stop()
            stdout: IO[bytes] | int = unit._log
        else:
            stdout = subprocess.PIPE
        unit.process = subprocess.Popen(
            unit.argv,
            env=unit.env,
            cwd=unit.cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        unit.started_at = self.clock()
        unit.restart_at = None
        if unit.process.stdout is not None:
            unit._reader = threading.Thread(
                target=self._pump, args=(unit, unit.process.stdout), name=f"supervise-{unit.name}", daemon=True
            )
            unit._reader.start()
        self.say(f"{unit.name} started with pid {unit.process.pid}", unit)

    def start(self) -> None:
        """Start every unit in order, then the monitor thread."""
        for unit in self.units.values():
            self._spawn(unit)
        self._thread = threading.Thread(target=self._monitor, name="supervise", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """One pass: notice exits, schedule restarts with backoff, start the units whose delay is over."""
        for unit in self.units.values():
            if self._stopping.is_set():
                return
            proc = unit.process
            if unit.done or proc is None:
                continue
            if unit.restart_at is None:
                code = proc.poll()
                if code is None:
                    continue
                unit.exits.append(code)
                # leftovers of the unit (e.g. gunicorn workers of a killed master) must not hold its ports
                _signal_group(proc, signal.SIGKILL)
                if unit.oneshot and code == 0:
                    unit.done = True
                    self.say(f"{unit.name} finished", unit)
                    continue
                uptime = self.clock() - unit.started_at
                unit.failures = 1 if uptime >= self.backoff.reset_after else unit.failures + 1
                delay = self.backoff.delay(unit.failures)
                unit.restarts += 1
                unit.restart_at = self.clock() + delay
                self.say(f"{unit.name} exited with {code}; restarting in {delay:g} s (restart {unit.restarts})", unit)
            if unit.restart_at is not None and self.clock() >= unit.restart_at:
                self._spawn(unit)

    def _monitor(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            self.check()

    def stop(self) -> None:
        """Stop restarting; stop the units, then the `stop_last` ones, then close the logs."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        units = list(reversed(list(self.units.values())))
        self._stop_wave([u for u in units if not u.stop_last])
        self._stop_wave([u for u in units if u.stop_last])
        for unit in self.units.values():
            if unit._reader is not None:
                unit._reader.join(2)
            if unit._log is not None:
                unit._log.close()
                unit._log = None

    def _stop_wave(self, units: Sequence[Unit]) -> None:
        """SIGTERM every running unit of `units` at once, SIGKILL the groups still alive after `stop_timeout`."""
        alive = [u for u in units if u.running]
        for unit in alive:
            assert unit.process is not None
            self.say(f"stopping {unit.name} (pid {unit.process.pid})", unit)
            unit.process.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for unit in alive:
            assert unit.process is not None
            try:
                unit.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{unit.name} did not stop within {self.stop_timeout:g} s; killing it", unit)
        for unit in alive:
            # the whole group: a unit's children outlive neither a hung unit nor a clean one
            assert unit.process is not None
            _signal_group(unit.process, signal.SIGKILL)
            unit.process.wait()

    def run(self) -> int:
        """Start, supervise until SIGINT/SIGTERM, stop everything; the exit status of `make run`."""
        received: list[int] = []
        wake = threading.Event()

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)
            wake.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        self.start()
        while not wake.wait(1.0):
            pass
        self.say(f"received {signal.Signals(received[0]).name}; stopping every unit")
        self.stop()
        return 0


def units_from_procfile(
    path: Path,
    *,
    oneshot: Sequence[str] = (),
    stop_last: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> list[Unit]:
    """The units of a Procfile, run by /bin/sh -c from the Procfile's directory."""
    environment = dict(os.environ if env is None else env)
    entries = parse_procfile(path.read_text())
    unknown = (set(oneshot) | set(stop_last)) - {name for name, _ in entries}
    if unknown:
        raise ValueError(f"no Procfile unit named {', '.join(sorted(unknown))}")
    return [
        Unit(
            name,
            command,
            dict(environment),
            oneshot=name in oneshot,
            stop_last=name in stop_last,
            cwd=path.resolve().parent,
        )
        for name, command in entries
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m crm_runtime.supervise -f Procfile [--oneshot NAME ...] [--stop-last NAME ...]`."""
    parser = argparse.ArgumentParser(description="Run the units of a Procfile, restarting the ones that crash.")
    parser.add_argument("-f", "--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--oneshot", action="append", default=[], help="a unit whose exit status 0 is not a crash")
    parser.add_argument("--stop-last", action="append", default=[], help="a unit stopped after the others (a store)")
    parser.add_argument("--stop-timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    units = units_from_procfile(args.procfile, oneshot=args.oneshot, stop_last=args.stop_last)
    return Supervisor(units, stop_timeout=args.stop_timeout).run()


if __name__ == "__main__":
    sys.exit(main())
