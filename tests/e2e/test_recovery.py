"""The platform recovers by itself from crashed units, and no confirmed record's event is lost.

While a client keeps creating customers through REST, the record service's outbox
relay and then the record service itself are killed with SIGKILL. The supervisor
(crm_runtime.supervise, as under `make run`) restarts each; creates succeed again
within a bounded time, the gateway answers 503 (problem+json) meanwhile, and every
record the API confirmed has exactly one `record.created` event on RabbitMQ
(deliveries are at least once: duplicates of one event id are deduplicated).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pika
import requests

from crm_runtime.events import declare_exchange, exchange_name
from tests.support.launcher import Platform, Unit

from .conftest import Client

RECOVERY_BOUND = 60.0
"""Seconds within which creates must succeed again after a kill (restart backoff + start-up + reconnects)."""


@dataclass
class Outcome:
    """One create attempt as the client saw it."""

    at: float
    status: int | None
    error: str = ""
    retry_after: str | None = None
    problem_type: str = ""


@dataclass
class CreateLoad:
    """A client thread creating customers one after another; a failed attempt is retried with a new name."""

    base_url: str
    token: str
    confirmed: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="create-load", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        http = requests.Session()
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Language": "en"}
        url = f"{self.base_url}/api/v1/forms/customer/records"
        while not self.stop.is_set():
            body = {"data": {"customer_name": f"恢复测试{uuid.uuid4().hex[:12]}有限公司", "level": "A"}}
            try:
                resp = http.post(url, json=body, headers=headers, timeout=30)
            except requests.RequestException as exc:
                self.outcomes.append(Outcome(time.monotonic(), None, type(exc).__name__))
                time.sleep(0.2)
                continue
            if resp.status_code == 201 or resp.status_code == 200:
                record = resp.json()
                self.confirmed.append(record.get("id") or record["record"]["id"])
                self.outcomes.append(Outcome(time.monotonic(), resp.status_code))
                continue
            try:
                problem_type = str(resp.json().get("type", ""))
            except ValueError:
                problem_type = resp.text[:200]
            self.outcomes.append(
                Outcome(time.monotonic(), resp.status_code, resp.reason, resp.headers.get("Retry-After"), problem_type)
            )
            time.sleep(0.2)

    def wait_confirmed(self, count: int, timeout: float) -> float:
        """Wait until `count` creates were confirmed; return when the last of them was."""
        deadline = time.monotonic() + timeout
        while len(self.confirmed) < count:
            assert self.thread is not None and self.thread.is_alive(), "the client thread died"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {len(self.confirmed)} of {count} creates confirmed within {timeout:g} s; "
                    f"last answers: {[(o.status, o.error) for o in self.outcomes[-5:]]}"
                )
            time.sleep(0.05)
        return time.monotonic()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)


class CreatedEvents:
    """An exclusive queue bound to record.created, consumed by its own thread (its connection stays serviced)."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.by_record: dict[str, set[str]] = defaultdict(set)
        self.deliveries = 0
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="created-events", daemon=True)
        self._lock = threading.Lock()

    def _run(self) -> None:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
            ch = conn.channel()
            exchange = exchange_name("record")
            declare_exchange(ch, exchange)
            queue = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
            ch.queue_bind(queue=queue, exchange=exchange, routing_key="record.created")

            def on_message(_ch: Any, _method: Any, _props: Any, body: bytes) -> None:
                envelope = json.loads(body)
                with self._lock:
                    self.deliveries += 1
                    self.by_record[envelope["data"]["record_id"]].add(envelope["id"])

            ch.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=True)
            self.ready.set()
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.2)
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()

    def missing(self, record_ids: list[str]) -> list[str]:
        with self._lock:
            return [r for r in record_ids if not self.by_record.get(r)]

    def event_ids(self, record_id: str) -> set[str]:
        with self._lock:
            return set(self.by_record.get(record_id, set()))


def _kill_and_wait_restart(unit: Unit, timeout: float = 30.0) -> None:
    assert unit.process is not None and unit.running, f"{unit.name} is not running before the kill"
    before, restarts = unit.process.pid, unit.restarts
    unit.kill()
    deadline = time.monotonic() + timeout
    while not (unit.restarts > restarts and unit.running and unit.process.pid != before):
        assert time.monotonic() < deadline, f"{unit.name} was not restarted within {timeout:g} s"
        time.sleep(0.05)
    assert unit.exits[-1] == -9


def _wait_http_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} not ready within {timeout:g} s"
        time.sleep(0.2)


def test_killed_relay_and_record_service_come_back_under_load_with_no_event_lost(
    platform: Platform, admin: Client
) -> None:
    events = CreatedEvents(platform.env["AMQP_URL"])
    events.thread.start()
    assert events.ready.wait(30) and events.error is None, events.error
    assert admin.token is not None
    load = CreateLoad(platform.base_url, admin.token)
    load.start()
    relay, record = platform.units["relay"], platform.units["record"]
    try:
        load.wait_confirmed(60, timeout=60)

        # 1. the relay: creates go on (the outbox keeps the events), the relay is back and catches up
        _kill_and_wait_restart(relay)
        load.wait_confirmed(len(load.confirmed) + 60, timeout=60)

        # 2. the record service: creates fail meanwhile, then succeed again by themselves
        at_kill = len(load.confirmed)
        killed_at = time.monotonic()
        _kill_and_wait_restart(record)
        recovered_at = load.wait_confirmed(at_kill + 1, timeout=RECOVERY_BOUND)
        assert recovered_at - killed_at < RECOVERY_BOUND
        load.wait_confirmed(max(300, len(load.confirmed) + 60), timeout=120)
    finally:
        load.finish()
    assert load.thread is not None and not load.thread.is_alive()
    outage = [o for o in load.outcomes if killed_at <= o.at <= recovered_at and o.status not in (200, 201)]
    before = [o for o in load.outcomes if o.at < killed_at and o.status not in (200, 201)]
    after = [o for o in load.outcomes if o.at > recovered_at and o.status not in (200, 201)]
    assert before == [], f"creates failed while only the relay was down: {before[:5]}"
    assert after == [], f"creates failed after the record service was back: {after[:5]}"
    # what a client sees while the record service is down: 503 problem documents, never a 500
    assert {o.status for o in outage} <= {503}, [(o.status, o.error, o.problem_type) for o in outage[:10]]
    assert all(o.problem_type.endswith("service_unavailable") for o in outage), [o.problem_type for o in outage[:5]]

    # every confirmed record has its record.created event, exactly one event id each
    confirmed = list(load.confirmed)
    assert len(set(confirmed)) == len(confirmed) >= 300
    deadline = time.monotonic() + 90
    while events.missing(confirmed) and time.monotonic() < deadline:
        time.sleep(0.5)
    events.stop.set()
    events.thread.join(10)
    assert events.error is None, events.error
    missing = events.missing(confirmed)
    assert missing == [], f"{len(missing)} of {len(confirmed)} confirmed records have no record.created event"
    doubled = {r: ids for r in confirmed if len(ids := events.event_ids(r)) != 1}
    assert doubled == {}, f"records with more than one record.created event id: {list(doubled.items())[:5]}"

    # the platform is whole again for the tests that follow
    for unit in platform.units.values():
        assert unit.running, f"{unit.name} is not running"
    _wait_http_ok(f"http://127.0.0.1:{platform.units['record'].env['HTTP_PORT']}/readyz", 30)
    _wait_http_ok(f"http://127.0.0.1:{platform.units['relay'].env['RELAY_HTTP_PORT']}/readyz", 30)
    _wait_http_ok(f"{platform.base_url}/readyz", 30)
    print(
        f"\nrecovery: {len(confirmed)} confirmed creates, {events.deliveries} record.created deliveries; "
        f"record service back {recovered_at - killed_at:.1f} s after the kill; "
        f"answers meanwhile: {sorted({(o.status, o.retry_after) for o in outage}, key=str)} ({len(outage)} attempts)"
    )
    assert all(o.retry_after and int(o.retry_after) > 0 for o in outage), "every 503 says when to retry"


def test_form_service_outage_is_a_503_with_retry_after_and_writes_resume_by_themselves(
    platform: Platform, admin: Client
) -> None:
    """Records written while the form service is down: 503 + Retry-After (never 500), then 201 once it is back."""
    form_unit = platform.units["form"]
    apps = admin.ok("GET", "/apps")
    app_id = (apps["items"] if isinstance(apps, dict) else apps)[0]["id"]
    seen: list[tuple[int, str | None]] = []
    for attempt in range(3):  # the supervisor restarts the form service within about a second: catch the gap
        key = f"outage_{uuid.uuid4().hex[:8]}"
        field = {"key": "name", "type": "text", "label": {"zh-CN": "名称", "en": "Name"}, "required": True}
        admin.ok(
            "POST",
            f"/apps/{app_id}/forms",
            json={"key": key, "name": {"zh-CN": "停机", "en": "Outage"}, "fields": [field]},
        )
        admin.ok("POST", f"/forms/{key}/publish")
        _kill_and_wait_restart(form_unit)  # returns as soon as the new process exists, before it serves
        resp = admin.request("POST", f"/forms/{key}/records", json={"data": {"name": f"停机{attempt}"}})
        seen.append((resp.status_code, resp.headers.get("Retry-After")))
        if resp.status_code == 503:
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert int(resp.headers["Retry-After"]) > 0
            break
        assert resp.status_code == 201, resp.text
    assert any(status == 503 for status, _ in seen), f"never caught the outage: {seen}"
    assert all(status in (201, 503) for status, _ in seen), seen
    deadline = time.monotonic() + RECOVERY_BOUND
    while True:
        resp = admin.request("POST", f"/forms/{key}/records", json={"data": {"name": "恢复后"}})
        if resp.status_code == 201:
            break
        assert resp.status_code == 503, resp.text
        assert time.monotonic() < deadline, "writes did not resume after the form service came back"
        time.sleep(0.5)
