"""The process supervisor of `make run` and the launcher: restart with backoff, one-shot units, clean stop."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crm_runtime.supervise import Backoff, Supervisor, Unit, parse_procfile, units_from_procfile

PY = sys.executable
SLEEP = [PY, "-c", "import time; time.sleep(120)"]


class Lines(io.StringIO):
    """A thread-safe enough text sink whose lines the test can read while the supervisor writes."""

    def isatty(self) -> bool:
        return False

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def supervised() -> Iterator[list[Supervisor]]:
    started: list[Supervisor] = []
    yield started
    for sup in started:
        sup.stop()


def test_backoff_doubles_from_one_second_and_caps_at_thirty() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_procfile_lines_comments_and_errors() -> None:
    text = "# units\nstore: exec db --port $P\n\nweb:  python -m web serve  \n"
    assert parse_procfile(text) == [("store", "exec db --port $P"), ("web", "python -m web serve")]
    with pytest.raises(ValueError, match="line 2"):
        parse_procfile("a: x\nno command here\n")


def test_a_killed_unit_is_restarted_with_a_log_line_while_the_others_keep_running(
    supervised: list[Supervisor],
) -> None:
    out = Lines()
    sup = Supervisor(
        [Unit("relay", SLEEP), Unit("web", SLEEP)], out=out, backoff=Backoff(initial=0.2), poll_interval=0.02
    )
    supervised.append(sup)
    sup.start()
    relay, web = sup.units["relay"], sup.units["web"]
    assert relay.process is not None and web.process is not None
    first, web_pid = relay.process.pid, web.process.pid
    relay.kill()
    wait_for(lambda: relay.process is not None and relay.process.pid != first and relay.running)
    assert relay.restarts == 1 and relay.exits == [-9]
    assert any(re.search(r"relay exited with -9; restarting in 0\.2 s \(restart 1\)$", line) for line in out.lines())
    assert web.process.pid == web_pid and web.running and web.restarts == 0


def test_quick_crashes_back_off_exponentially_up_to_the_cap(supervised: list[Supervisor]) -> None:
    out = Lines()
    crash = Unit("crash", [PY, "-c", "import sys; sys.exit(3)"])
    sup = Supervisor([crash], out=out, backoff=Backoff(initial=0.05, cap=0.2, reset_after=60), poll_interval=0.01)
    supervised.append(sup)
    sup.start()
    wait_for(lambda: crash.restarts >= 5)
    sup.stop()
    delays = [float(m) for m in re.findall(r"crash exited with 3; restarting in ([\d.]+) s", out.getvalue())]
    assert delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert set(crash.exits) == {3}


def test_the_backoff_starts_again_after_a_long_enough_uptime(supervised: list[Supervisor]) -> None:
    out = Lines()
    # up for 0.4 s each time, longer than reset_after: every restart waits the initial delay
    unit = Unit("slow", [PY, "-c", "import sys, time; time.sleep(0.4); sys.exit(1)"])
    sup = Supervisor([unit], out=out, backoff=Backoff(initial=0.05, cap=5, reset_after=0.3), poll_interval=0.01)
    supervised.append(sup)
    sup.start()
    wait_for(lambda: unit.restarts >= 3, timeout=15)
    delays = re.findall(r"slow exited with 1; restarting in ([\d.]+) s", out.getvalue())
    assert delays[:3] == ["0.05", "0.05", "0.05"]


def test_a_oneshot_unit_that_succeeds_is_not_restarted_but_one_that_fails_is(supervised: list[Supervisor]) -> None:
    out = Lines()
    ready = Unit("ready", [PY, "-c", "print('platform is up')"], oneshot=True)
    broken = Unit("broken", [PY, "-c", "raise SystemExit(2)"], oneshot=True)
    sup = Supervisor([ready, broken], out=out, backoff=Backoff(initial=0.05), poll_interval=0.01)
    supervised.append(sup)
    sup.start()
    wait_for(lambda: ready.done and broken.restarts >= 2)
    time.sleep(0.2)
    assert ready.restarts == 0 and ready.exits == [0]
    assert "ready finished" in out.getvalue()
    assert re.search(r"ready\s+\| platform is up", out.getvalue()), "the unit's output is prefixed with its name"
    assert not ready.running


def test_stop_sends_sigterm_then_kills_what_ignores_it_and_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "terminated"
    graceful = Unit(
        "graceful",
        [
            PY,
            "-c",
            "import signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').write('yes'), sys.exit(0)))\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)",
        ],
    )
    # ignores SIGTERM and leaves a child of its own behind
    stubborn = Unit(
        "stubborn",
        [
            PY,
            "-c",
            "import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(120)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(120)",
        ],
    )
    out = Lines()
    sup = Supervisor([graceful, stubborn], out=out, stop_timeout=0.5, poll_interval=0.02)
    sup.start()
    wait_for(lambda: re.search(r"stubborn\s+\| (\d+)$", out.getvalue(), re.M) is not None and "ready" in out.getvalue())
    match = re.search(r"stubborn\s+\| (\d+)$", out.getvalue(), re.M)
    assert match is not None
    grandchild = int(match.group(1))
    assert alive(grandchild)
    t0 = time.monotonic()
    sup.stop()
    assert time.monotonic() - t0 < 5
    assert marker.read_text() == "yes", "SIGTERM first"
    assert graceful.process is not None and graceful.process.returncode == 0
    assert stubborn.process is not None and stubborn.process.returncode == -signal.SIGKILL
    wait_for(lambda: not alive(grandchild), timeout=3)
    assert graceful.restarts == 0 and stubborn.restarts == 0, "units stopped on request are not restarted"
    assert "stubborn did not stop within 0.5 s; killing it" in out.getvalue()


def test_log_files_get_the_units_output_and_the_restart_line(tmp_path: Path, supervised: list[Supervisor]) -> None:
    unit = Unit("w", [PY, "-c", "print('hello', flush=True); raise SystemExit(4)"], log_path=tmp_path / "w.log")
    sup = Supervisor([unit], out=Lines(), backoff=Backoff(initial=0.05), poll_interval=0.01)
    supervised.append(sup)
    sup.start()
    wait_for(lambda: unit.restarts >= 2)
    sup.stop()
    text = (tmp_path / "w.log").read_text()
    assert text.count("hello") >= 2
    assert "[supervise] w exited with 4; restarting in 0.05 s (restart 1)" in text


def test_make_run_style_procfile_restarts_a_killed_unit_and_stops_on_sigterm(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"web: exec {PY} -c \"import time; print('serving on', $PORT, flush=True); time.sleep(120)\"\n"
        f"ready: exec {PY} -c 'print(\"all up\")'\n"
    )
    assert [u.oneshot for u in units_from_procfile(procfile, oneshot=["ready"])] == [False, True]
    assert [u.stop_last for u in units_from_procfile(procfile, stop_last=["web"])] == [True, False]
    with pytest.raises(ValueError, match="nope"):
        units_from_procfile(procfile, oneshot=["nope"])
    env = {**os.environ, "PORT": "8099", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [PY, "-m", "crm_runtime.supervise", "-f", str(procfile), "--oneshot", "ready", "--stop-timeout", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: any("web started with pid" in line for line in seen) and any("all up" in s for s in seen))
        pid = int(next(re.search(r"web started with pid (\d+)", s) for s in seen if "web started" in s).group(1))  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: sum("web started with pid" in line for line in seen) == 2)
        assert any("web exited with -9; restarting in 1 s (restart 1)" in line for line in seen), seen
        assert any(re.search(r"web\s+\| serving on 8099", line) for line in seen)
        assert any("ready finished" in line for line in seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(2)
    assert any("received SIGTERM; stopping every unit" in line for line in seen)
    restarted = int(re.findall(r"web started with pid (\d+)", "".join(seen))[-1])
    assert not alive(restarted)


def test_stop_last_units_are_stopped_only_after_the_others_have_exited(tmp_path: Path) -> None:
    def recorder(name: str, linger: float) -> list[str]:
        # on SIGTERM: note the time, linger (a service finishing its work against the store), note again, exit
        return [
            PY,
            "-c",
            "import signal, sys, time\n"
            "def bye(*_):\n"
            f"    open({str(tmp_path / name)!r}, 'a').write(f'{{time.time()}}\\n')\n"
            f"    time.sleep({linger})\n"
            f"    open({str(tmp_path / name)!r}, 'a').write(f'{{time.time()}}\\n')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "time.sleep(120)",
        ]

    out = Lines()
    store = Unit("store", recorder("store", 0), stop_last=True)
    service = Unit("service", recorder("service", 0.5))
    sup = Supervisor([store, service], out=out, stop_timeout=5, poll_interval=0.02)
    sup.start()
    wait_for(lambda: out.getvalue().count("| up") == 2)
    sup.stop()
    service_done = float((tmp_path / "service").read_text().split()[1])
    store_asked = float((tmp_path / "store").read_text().split()[0])
    assert store_asked >= service_done, "the store got SIGTERM before the service had finished"
    assert store.restarts == 0 and service.restarts == 0
