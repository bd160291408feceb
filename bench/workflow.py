"""Benchmarks of the workflow service: the platform's automations beside raw pika and pymongo in the same run.

Four figures, each printed with its goal and a raw baseline measured in the same run (never asserted):

1. latency: `record.created` -> the automation's task readable through the API. 200 customers are created one
   by one through REST (owner: the admin) on the default tenant's CRM customer form, whose template automation
   "a customer gets an owner -> a follow-up task" creates a task; the task list is polled with a filter on the
   task's customer relation until it appears. Raw: the same hops with raw clients (publish an envelope of the
   same size, consume it, insert_one a copy of a task record into a collection with the records' indexes,
   poll find_one until it is visible).
2. throughput: 10,000 record events through 3 enabled automations (notify in_app, update_record of a field,
   create_record of a task) on a fresh 4-field customer form (bench/workload.py), loaded through the bulk endpoint;
   first event seen on the broker -> last run logged in `runs`. Raw: the same 10,000 envelopes published to a
   scratch durable queue and consumed with pika (basic_consume + ack, prefetch 10 as nameko's max_workers).
3. the inactivity (recycle) due scan over 100,000 armed customers, against a store of its own (no platform):
   `timers` filled as MongoWorkflowStore.arm writes them, then the engine's pass (claim_due until None with a
   no-op fire + finish, as Engine.sweep/_fire_record do; skip_due when the automation has a condition).
   Raw: find({automation_id, kind, state, due_at <= now}) with pymongo on the same store.
4. 1,000 concurrent leads over 5 users: 5 new users in a new department (REST), a round-robin automation on
   the lead form, 1,000 leads created without an owner over gRPC by a service principal from 25 threads; the
   owners counted once all are assigned. Raw: the same 1,000 turns as compare-and-set increments of one
   pointer document with pymongo from the same number of threads.

Usage:
    make bench WHAT=workflow                       # everything (about 10 minutes on 2 cores)
    make bench WHAT=all                            # the record figures (bench/run.py), then these
    .venv/bin/python bench/workflow.py --only 3    # the due scan only (no platform)
    .venv/bin/python bench/workflow.py --events 2000 --latency-samples 50 --timers 20000   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pika
from bson import ObjectId
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import Api, copy_collection, lat, ms, pct, record_db, store_version, timed  # noqa: E402
from workload import customer_form, customer_rows  # noqa: E402

from tests.support.launcher import Platform, start_platform, workflow_queues  # noqa: E402

Doc = dict[str, Any]
BULK_ROWS = 10_000  # the bulk endpoint's maximum per request
POLL = 0.025  # seconds between polls of the task list (the latency's resolution)
PREFETCH = 10  # nameko's max_workers in workflow_service.__main__: its consumer's prefetch count
THREADS = 25  # concurrent gRPC clients of figure 4
WORKFLOW_DB = "crm_workflow"


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    """One printed figure."""

    name: str
    ours: str
    raw: str
    goal: str
    met: bool | None  # None: no goal, or not measured


@dataclass
class Report:
    """The rows printed so far, reprinted as one table at the end."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    HEADER = f"{'figure':<46} | {'ours':<46} | {'raw baseline, same run':<44} | {'goal':<18} | result"

    @staticmethod
    def format(row: Row) -> str:
        """One table line."""
        verdict = "—" if row.met is None else ("MET" if row.met else "MISSED")
        return f"{row.name:<46} | {row.ours:<46} | {row.raw:<44} | {row.goal:<18} | {verdict}"

    def add(self, row: Row) -> None:
        """Record and print a row now (long runs show progress)."""
        self.rows.append(row)
        print(self.format(row), flush=True)

    def note(self, text: str) -> None:
        """A footnote, printed under the table at the end."""
        self.notes.append(text)
        print("   " + text, flush=True)

    def print_table(self, command: str) -> None:
        """The whole table, its notes and the command that produced it."""
        print("\n" + self.HEADER)
        print("-" * len(self.HEADER))
        for row in self.rows:
            print(self.format(row))
        for text in self.notes:
            print("  * " + text)
        print(f"\n(produced by: {command})")


def rate(count: float, seconds: float) -> str:
    """count/seconds as a per-second text."""
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "—"


# ---------------------------------------------------------------- the broker


def amqp_params(url: str) -> pika.URLParameters:
    """Connection parameters that survive a long quiet spell (heartbeats are answered by process_data_events)."""
    params = pika.URLParameters(url)
    params.heartbeat = 600
    params.blocked_connection_timeout = 300
    return params


class EventTap:
    """A private queue bound to the record service's exchange: when each `record.created` of a watched form
    reached the broker, and its body (the relay's side of the latency; the raw consumer's envelopes).

    Every platform on this broker publishes to the same `record.events` exchange, so envelopes are kept only
    for the forms being watched.
    """

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        self.seen: dict[str, list[tuple[float, str, str, bytes]]] = {}  # form -> [(time, event id, record, body)]
        self.by_record: dict[str, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-tap", daemon=True)

    def start(self) -> EventTap:
        """Bind and start consuming (returns once bound)."""
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"event tap did not start: {self._error}")
        return self

    def watch(self, form_id: str) -> None:
        """Keep the envelopes of a form from now on."""
        with self._lock:
            self._watched.add(form_id)
            self.seen.setdefault(form_id, [])

    def events(self, form_id: str) -> list[tuple[float, str, str, bytes]]:
        """The envelopes seen so far of a watched form."""
        with self._lock:
            return list(self.seen.get(form_id, []))

    def _run(self) -> None:
        try:
            conn = pika.BlockingConnection(amqp_params(self._url))
            ch = conn.channel()
            ch.exchange_declare(exchange="record.events", exchange_type="topic", durable=True, auto_delete=False)
            queue = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
            ch.queue_bind(queue=queue, exchange="record.events", routing_key="record.created")

            def on_message(_ch: Any, _method: Any, _props: Any, body: bytes) -> None:
                now = time.time()
                try:
                    envelope = json.loads(body)
                except ValueError:
                    return
                data = envelope.get("data") or {}
                form_id = str(data.get("form_id") or "")
                with self._lock:
                    if form_id in self._watched:
                        record_id = str(data.get("record_id") or "")
                        self.seen[form_id].append((now, str(envelope.get("id")), record_id, body))
                        self.by_record[record_id] = now

            ch.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=True)
            self._ready.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.2)
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by start() or stop()
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        """Stop consuming (the queue goes with the connection)."""
        self._stop.set()
        self._thread.join(10)


def queue_depth(amqp_url: str, names: list[str]) -> int:
    """Messages ready in the named queues (a passive declare each; a missing queue counts 0)."""
    total = 0
    conn = pika.BlockingConnection(amqp_params(amqp_url))
    try:
        for name in names:
            ch = conn.channel()
            try:
                total += int(ch.queue_declare(queue=name, passive=True).method.message_count)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        conn.close()
    return total


def raw_consume_rate(amqp_url: str, bodies: list[bytes]) -> tuple[float, float]:
    """(msgs/s consumed, msgs/s published): `bodies` into a scratch durable queue, persistent, then consumed with
    BlockingConnection basic_consume + basic_ack at nameko's prefetch."""
    name = f"bench.workflow.raw-{secrets.token_hex(4)}"
    conn = pika.BlockingConnection(amqp_params(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=name, durable=True)
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        t0 = time.perf_counter()
        for body in bodies:
            ch.basic_publish(exchange="", routing_key=name, body=body, properties=props)
        while ch.queue_declare(queue=name, durable=True, passive=True).method.message_count < len(bodies):
            time.sleep(0.05)  # every message queued before the consumer starts
        published = time.perf_counter() - t0
        ch.basic_qos(prefetch_count=PREFETCH)
        got = 0
        done = threading.Event()

        def on_message(c: Any, method: Any, _props: Any, body: bytes) -> None:
            nonlocal got
            json.loads(body)  # the worker decodes every body too
            c.basic_ack(delivery_tag=method.delivery_tag)
            got += 1
            if got >= len(bodies):
                done.set()
                c.stop_consuming()

        ch.basic_consume(queue=name, on_message_callback=on_message)
        t0 = time.perf_counter()
        ch.start_consuming()
        consumed = time.perf_counter() - t0
        ch.queue_delete(queue=name)
    finally:
        conn.close()
    return len(bodies) / consumed, len(bodies) / published


# ---------------------------------------------------------------- the platform through REST and gRPC


@dataclass
class Crm:
    """The default tenant's CRM template as the bench sees it."""

    api: Api
    platform: Platform
    me: Doc
    forms: dict[str, str]  # key -> id
    wf: Any  # the workflow service's database (runs, users replica)
    rec: Any  # the record service's database

    @classmethod
    def connect(cls, platform: Platform) -> Crm:
        """Log in as the admin, find the template's forms, open both stores."""
        api = Api(platform)
        me = api.get("/me")
        apps = api.get("/apps")["items"]
        app = next(a for a in apps if a.get("key") == "crm")
        forms = {f["key"]: f["id"] for f in api.get(f"/apps/{app['id']}/forms")["items"]}
        wf_client: MongoClient[Any] = MongoClient(platform.env["WORKFLOW_MONGO_URL"], tz_aware=True)
        rec_client: MongoClient[Any] = MongoClient(platform.env["RECORD_MONGO_URL"], tz_aware=True)
        wf = wf_client[platform.env.get("WORKFLOW_DB", WORKFLOW_DB)]
        return cls(api, platform, me, forms, wf, record_db(platform, rec_client))

    @property
    def tenant(self) -> str:
        """The admin's tenant."""
        return str(self.me.get("tenant_id") or (self.me.get("tenant") or {}).get("id") or "default")

    def automations(self, form_id: str) -> list[Doc]:
        """The automations of a form."""
        return list(self.api.get("/automations", {"form_id": form_id})["items"])

    def enabled(self, form_id: str) -> list[Doc]:
        """The enabled automations of a form."""
        return [a for a in self.automations(form_id) if a.get("enabled")]


def relation_filter(field_key: str, record_id: str) -> str:
    """The list filter "<relation> = record" as the API's JSON filter tree."""
    return json.dumps({"and": [{"field": field_key, "op": "eq", "value": record_id}]})


def runs_done(runs: Any, tenant_id: str, automation_ids: list[str]) -> int:
    """Runs logged so far of these automations (one count each, on the by_automation index)."""
    return sum(runs.count_documents({"tenant_id": tenant_id, "automation_id": a}) for a in automation_ids)


def last_run_at(runs: Any, tenant_id: str, automation_ids: list[str]) -> datetime | None:
    """When the last run of these automations finished."""
    last: datetime | None = None
    for automation_id in automation_ids:
        for doc in runs.find({"tenant_id": tenant_id, "automation_id": automation_id}, {"finished_at": 1}):
            at = doc.get("finished_at")
            if isinstance(at, datetime):
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                last = at if last is None or at > last else last
    return last


def run_durations(runs: Any, tenant_id: str, automation_ids: list[str]) -> dict[str, list[float]]:
    """duration_ms of the runs of each automation."""
    out: dict[str, list[float]] = {}
    for automation_id in automation_ids:
        found = runs.find({"tenant_id": tenant_id, "automation_id": automation_id}, {"duration_ms": 1})
        out[automation_id] = [float(d.get("duration_ms") or 0) / 1000 for d in found]
    return out


def run_statuses(runs: Any, tenant_id: str, automation_ids: list[str]) -> Counter[str]:
    """How many runs of these automations ended in each status."""
    counts: Counter[str] = Counter()
    for automation_id in automation_ids:
        for doc in runs.find({"tenant_id": tenant_id, "automation_id": automation_id}, {"status": 1}):
            counts[str(doc.get("status"))] += 1
    return counts


# ---------------------------------------------------------------- 1: event -> task readable


def bench_latency(crm: Crm, tap: EventTap, samples: int, report: Report) -> None:
    """Create customers one by one (owner: admin); the template's automation makes a task; poll until readable."""
    api, forms = crm.api, crm.forms
    customer, task = forms["customer"], forms["task"]
    enabled = crm.enabled(customer)
    owner_task = [a for a in enabled if (a.get("trigger") or {}).get("type") == "owner_assigned"]
    if not owner_task:
        report.note("latency: the template's owner_assigned automation is missing or disabled: figure skipped")
        return
    print(
        f"\n1. latency: {samples} customers one by one on the CRM customer form ({len(enabled)} enabled automations: "
        + ", ".join((a.get("name") or {}).get("en", a["id"]) for a in enabled)
        + ")",
        flush=True,
    )
    tap.watch(customer)
    api.login()

    def create(i: int) -> tuple[float, float, str]:
        body = {
            "data": {"customer_name": f"工作流基准客户{i}号", "source": "exhibition", "level": "B"},
            "owner_id": crm.me["id"],
        }
        resp = api.request("POST", f"/forms/{customer}/records", json=body, timeout=60)
        returned, wall = time.perf_counter(), time.time()
        if resp.status_code != 201:
            raise RuntimeError(f"create customer: {resp.status_code} {resp.text[:300]}")
        return returned, wall, resp.json()["id"]

    def poll(record_id: str, since: float, timeout: float = 30.0) -> tuple[float | None, int, list[float]]:
        params = {"filter": relation_filter("customer", record_id), "count": "none", "page_size": 5}
        polls: list[float] = []
        while time.perf_counter() - since < timeout:
            t0 = time.perf_counter()
            body = api.get(f"/forms/{task}/records", params)
            polls.append(time.perf_counter() - t0)
            if body["items"]:
                return time.perf_counter() - since, len(polls), polls
            time.sleep(POLL)
        return None, len(polls), polls

    # warm-up: channels, form caches, the worker's first calls
    for i in range(3):
        returned, _wall, record_id = create(-1 - i)
        poll(record_id, returned)
    latencies, relay, poll_costs, missing = [], [], [], 0
    for i in range(samples):
        returned, wall, record_id = create(i)
        got, _n, costs = poll(record_id, returned)
        poll_costs.extend(costs)
        if got is None:
            missing += 1
            continue
        latencies.append(got)
        seen = tap.by_record.get(record_id)
        if seen is not None:
            relay.append(max(0.0, seen - wall))  # 0: the event was out before the 201 reached us

    raw = raw_latency(crm, tap.events(customer), samples)
    if not latencies:
        report.add(
            Row("event -> task readable (REST create + poll)", "no task appeared", lat(raw), "p95 <= 1 s", False)
        )
        return
    p95 = pct(latencies, 0.95)
    report.add(
        Row(
            f"event -> task readable, {samples} creates",
            lat(latencies) + (f" {missing} missing" if missing else ""),
            lat(raw),
            "p95 <= 1 s",
            p95 <= 1.0 and missing == 0,
        )
    )
    report.note(
        f"latency: from the create's 201 to the first poll that lists the task (GET /forms/task/records with "
        f"customer = id, every {POLL * 1000:.0f} ms; one poll costs {lat(poll_costs)}). The relay's share "
        f"(the 201 -> record.created on the broker): {lat(relay) if relay else 'not seen'}. Raw: publish an "
        f"envelope of the same size, consume it on another connection, insert_one a copy of a task record into a "
        f"collection with the records' indexes, poll find_one every {POLL * 1000:.0f} ms."
    )


def raw_latency(crm: Crm, envelopes: list[tuple[float, str, str, bytes]], n: int) -> list[float]:
    """The same hops with raw clients: publish -> consume -> insert_one -> the poll's find_one sees it."""
    db = crm.rec
    # a bounded read: the task form holds only the tasks figure 1 made
    template = db["records"].find_one({"tenant_id": crm.tenant, "form_id": crm.forms["task"], "deleted": False})
    if template is None or not envelopes:
        return []
    scratch = copy_collection(db, db["records"], "workflow_latency")
    body = envelopes[-1][3]
    name = f"bench.workflow.latency-{secrets.token_hex(4)}"
    url = crm.platform.env["AMQP_URL"]
    stop = threading.Event()
    ready = threading.Event()

    def consumer() -> None:
        conn = pika.BlockingConnection(amqp_params(url))
        ch = conn.channel()
        ch.queue_declare(queue=name, durable=True)
        ch.basic_qos(prefetch_count=PREFETCH)

        def on_message(c: Any, method: Any, _props: Any, payload: bytes) -> None:
            doc_id = json.loads(payload)["bench_id"]
            scratch.insert_one({**template, "_id": doc_id})
            c.basic_ack(delivery_tag=method.delivery_tag)

        ch.basic_consume(queue=name, on_message_callback=on_message)
        ready.set()
        while not stop.is_set():
            conn.process_data_events(time_limit=0.1)
        ch.queue_delete(queue=name)
        conn.close()

    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    ready.wait(30)
    conn = pika.BlockingConnection(amqp_params(url))
    ch = conn.channel()
    ch.queue_declare(queue=name, durable=True)
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    envelope = json.loads(body)
    out: list[float] = []
    try:
        for _ in range(n + 3):
            doc_id = str(ObjectId())
            payload = json.dumps({**envelope, "bench_id": doc_id}).encode()
            t0 = time.perf_counter()
            ch.basic_publish(exchange="", routing_key=name, body=payload, properties=props)
            while scratch.find_one({"_id": doc_id}, {"_id": 1}) is None:
                if time.perf_counter() - t0 > 30:
                    break
                time.sleep(POLL)
            out.append(time.perf_counter() - t0)
    finally:
        conn.close()
        stop.set()
        thread.join(10)
        scratch.drop()
    return out[3:]


# ---------------------------------------------------------------- 2: events through 3 automations


EVENT_FIELDS = ("customer_name", "level", "source", "status")


def event_form(key: str) -> Doc:
    """Four of the bench customer form's fields (bench/workload.py): a name, three selects.

    The 16-field form loads at about 100 rows/s here (its ~100 keyword tokens a row, see DESIGN_NOTES); this
    one keeps the load of 10,000 short, and the envelopes are the same kind of record.created.
    """
    full = customer_form(key)
    return {**full, "fields": [f for f in full["fields"] if f["key"] in EVENT_FIELDS]}


def event_rows(start: int, count: int, seed: int) -> list[Doc]:
    """Rows of event_form (the workload's customers, cut to its fields)."""
    return [{k: row[k] for k in EVENT_FIELDS} for row in customer_rows(start, count, seed)]


def three_automations(form_id: str, task_form_id: str) -> list[Doc]:
    """Three automations that each do real work on every new record of the bench form."""
    return [
        {
            "name": {"zh-CN": "基准：新记录通知负责人", "en": "bench: notify the owner of a new record"},
            "form": form_id,
            "trigger": {"type": "record_created"},
            "actions": [
                {
                    "type": "notify",
                    "recipients": [{"type": "owner"}],
                    "channels": ["in_app"],
                    "title": "新客户：{customer_name}",
                    "body": "请跟进 {customer_name}",
                }
            ],
        },
        {
            "name": {"zh-CN": "基准：新记录标为跟进中", "en": "bench: mark a new record as being followed up"},
            "form": form_id,
            "trigger": {"type": "record_created"},
            "actions": [{"type": "update_record", "values": {"status": "跟进中"}}],
        },
        {
            "name": {"zh-CN": "基准：新记录建任务", "en": "bench: a task for a new record"},
            "form": form_id,
            "trigger": {"type": "record_created"},
            "actions": [
                {
                    "type": "create_record",
                    "form": task_form_id,
                    "values": {"title": "【跟进】{customer_name}", "status": "todo"},
                }
            ],
        },
    ]


def bench_throughput(crm: Crm, tap: EventTap, args: argparse.Namespace, report: Report) -> None:
    """N records through the bulk endpoint on a form with exactly 3 enabled automations; events/s vs raw pika."""
    api, events = crm.api, args.events
    tenant = crm.tenant
    tag = str(ObjectId())[-6:]
    print(f"\n2. throughput: {events:,} record events through 3 automations", flush=True)
    api.login()
    app = api.post("/apps", {"name": {"zh-CN": f"工作流基准{tag}", "en": f"Workflow bench {tag}"}, "key": f"wfb_{tag}"})
    form = api.post(f"/apps/{app['id']}/forms", event_form(f"wfb_customer_{tag}"))
    api.post(f"/forms/{form['id']}/publish", {})
    task = api.post(
        f"/apps/{app['id']}/forms",
        {
            "key": f"wfb_task_{tag}",
            "name": {"zh-CN": "任务(基准)", "en": "Tasks (bench)"},
            "title_field": "title",
            "fields": [
                {"key": "title", "type": "text", "label": {"zh-CN": "标题", "en": "Title"}, "required": True},
                {
                    "key": "status",
                    "type": "select",
                    "label": {"zh-CN": "状态", "en": "Status"},
                    "options": [{"value": v, "label": {"zh-CN": v, "en": v}} for v in ("todo", "done")],
                },
            ],
        },
    )
    api.post(f"/forms/{task['id']}/publish", {})
    form_id = form["id"]
    ids = [api.post("/automations", spec)["id"] for spec in three_automations(form_id, task["id"])]
    enabled = crm.enabled(form_id)
    if sorted(a["id"] for a in enabled) != sorted(ids):
        raise RuntimeError(f"expected exactly our 3 automations enabled on {form_id}, found {len(enabled)}")
    # the worker caches nothing per form that a first event would not fill; one record warms its form caches
    tap.watch(form_id)
    runs = crm.wf["runs"]
    api.post(f"/forms/{form_id}/records", {"data": event_rows(10_000_000, 1, 11)[0]})
    deadline = time.monotonic() + 60
    while runs_done(runs, tenant, ids) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    warmed = runs_done(runs, tenant, ids)
    baseline_runs = warmed

    rows = event_rows(0, events, args.seed)
    bulk_s = 0.0
    for off in range(0, events, BULK_ROWS):
        chunk = rows[off : off + BULK_ROWS]
        seconds, body = timed(lambda chunk=chunk: api.post(f"/forms/{form_id}/records/bulk", {"records": chunk}))
        bulk_s += seconds
        if body.get("count") != len(chunk):
            raise RuntimeError(f"bulk created {body.get('count')} of {len(chunk)}")
    print(f"   bulk: {events:,} rows in {bulk_s:.1f} s ({rate(events, bulk_s)}); waiting for the runs...", flush=True)

    queues = [q for q in workflow_queues(crm.platform.env["WORKFLOW_QUEUE_PREFIX"]) if q.startswith("evt-record-")]
    amqp = crm.platform.env["AMQP_URL"]
    t_wait = time.monotonic()
    last_print = last_progress = time.monotonic()
    previous, complete = -1, False
    while True:
        time.sleep(3.0)
        # one automation's count is the events handled (a handler runs the 3 in turn); counting reads every entry
        handled = runs.count_documents({"tenant_id": tenant, "automation_id": ids[-1]}) - 1
        if handled != previous:
            previous, last_progress = handled, time.monotonic()
        if time.monotonic() - last_print > 20:
            last_print = time.monotonic()
            print(
                f"   {len(tap.events(form_id)) - 1:,} events on the broker, {handled:,} handled, "
                f"{queue_depth(amqp, queues):,} record events queued for the worker",
                flush=True,
            )
        if handled >= events:
            complete = runs_done(runs, tenant, ids) >= baseline_runs + 3 * events
            if complete:
                break
        if time.monotonic() - last_progress > 60 or time.monotonic() - t_wait > args.events_budget:
            # stop the backlog here (the next figure should not share the worker with it), let the handlers in
            # flight finish, then count what was fully handled
            purge_worker_queues(amqp, queues)
            time.sleep(5.0)
            break
    done = runs_done(runs, tenant, ids)
    complete = done >= baseline_runs + 3 * events
    envelopes = tap.events(form_id)[1:]  # the warm-up record's first
    first = envelopes[0][0] if envelopes else None
    last_event = envelopes[-1][0] if envelopes else None
    finished = last_run_at(runs, tenant, ids)
    statuses = run_statuses(runs, tenant, ids)
    durations = run_durations(runs, tenant, ids)
    bodies = [e[3] for e in envelopes] or [json.dumps({"pad": "x" * 1500}).encode()]
    raw_rate, raw_publish = raw_consume_rate(amqp, (bodies * (events // len(bodies) + 1))[:events])
    if first is None or finished is None:
        report.add(
            Row(
                f"{events:,} events through 3 automations", "no runs", f"{raw_rate:,.0f} msgs/s", ">= 0.25 x raw", False
            )
        )
        return
    span = finished.timestamp() - first
    handled = (done - baseline_runs) / 3
    ours = handled / span
    ratio = ours / raw_rate
    label = f"{events:,} events through 3 automations"
    report.add(
        Row(
            label if complete else label + " (partial)",
            f"{ours:,.1f} events/s = {ratio:.3f} x raw" + ("" if complete else f" ({handled:,.0f} of {events:,})"),
            f"{raw_rate:,.0f} msgs/s (pika consume+ack)",
            ">= 0.25 x raw",
            ratio >= 0.25 and complete,
        )
    )
    relay_span = (last_event or first) - first
    sizes = [len(e[3]) for e in envelopes]
    report.note(
        f"throughput: a fresh 4-field customer form with exactly 3 enabled automations (notify in_app the owner; "
        f"update_record status; create_record in a task form); {events:,} rows by the bulk endpoint in "
        f"{bulk_s:.1f} s, then the relay put {len(envelopes):,} record.created on the broker in {relay_span:.1f} s "
        f"({rate(len(envelopes), relay_span)}); first event -> last run logged {span:.1f} s; "
        f"{done - baseline_runs:,} runs logged ({', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))}). "
        f"A run takes (duration_ms, p50/p95): "
        + "; ".join(
            f"{what} {lat(durations[i])}"
            for what, i in zip(("notify", "update_record", "create_record"), ids, strict=True)
        )
        + f". Besides these, the worker handled two more events per record (the record.updated and the task's "
        f"record.created that the runs' writes caused; no automation of theirs fires) and any other platform's record events on this broker. "
        f"Envelopes {min(sizes) if sizes else 0:,}-{max(sizes) if sizes else 0:,} bytes. Raw: the same envelopes "
        f"into a scratch durable queue (persistent, {raw_publish:,.0f}/s published), consumed with "
        f"BlockingConnection basic_consume + basic_ack, prefetch {PREFETCH}."
        + (
            ""
            if complete
            else f" Stopped after {args.events_budget:.0f} s / no progress for 60 s: the rate is over "
            "the events fully handled by then; the rest of the worker's queue was purged."
        )
    )


def purge_worker_queues(amqp_url: str, names: list[str]) -> None:
    """Drop what this platform's worker has not consumed yet (its private queues)."""
    conn = pika.BlockingConnection(amqp_params(amqp_url))
    try:
        for name in names:
            ch = conn.channel()
            try:
                ch.queue_purge(queue=name)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        conn.close()


# ---------------------------------------------------------------- 3: the due scan


def timer_doc(automation_id: str, i: int, due_at: datetime, now: datetime, stage: str) -> Doc:
    """Timer item i of an inactivity automation, as MongoWorkflowStore.arm writes it (with the snapshot)."""
    from workflow_service.store.repository import EPOCH

    record_id = f"{i:024x}"
    return {
        "_id": f"rec:{automation_id}:{record_id}",
        "kind": "record",
        "tenant_id": "default",
        "automation_id": automation_id,
        "record_id": record_id,
        "due_at": due_at,
        "payload": {"trigger": "inactivity"},
        "state": "pending",
        "lease_until": EPOCH,
        "armed_at": now,
        "data": {"customer_name": f"北京华信科技有限公司{i}号", "stage": stage, "level": "ABC"[i % 3]},
        "owner_id": f"u{i % 50:03d}",
        "department_id": f"d{i % 5}",
        "created_by": "u000",
        "created_at": now - timedelta(days=3),
        "updated_at": now - timedelta(days=2),
    }


def pass_once(store: Any, *, automation_id: str, now: datetime, match: Doc | None, cap_s: float, cap_n: int) -> Doc:
    """One due pass as Engine.sweep does it: claim_due in batches of up to 1,000 (one read of the due range, then
    leases by update_many of 200 ids), a no-op fire + finish each; skip_due when a condition is pushed into the
    query; stopped after cap_s seconds or cap_n items: what it took."""
    worker = "bench-worker"
    claims: list[float] = []
    finishes: list[float] = []
    t0 = time.perf_counter()
    complete = False
    while True:
        c0 = time.perf_counter()
        items = store.claim_due(
            now=now,
            lease_seconds=120.0,
            worker=worker,
            automation_id=automation_id,
            kind="record",
            match=match,
            limit=1000,
        )
        claims.append(time.perf_counter() - c0)
        if not items:
            complete = True
            break
        for item in items:
            f0 = time.perf_counter()
            store.finish(item.id, worker, due_at=item.due_at)  # _fire_record's finally (the run itself: a no-op)
            finishes.append(time.perf_counter() - f0)
        if time.perf_counter() - t0 > cap_s or len(finishes) >= cap_n:
            break
    skip_s = None
    if complete and match is not None:
        skip_s, _ = timed(lambda: store.skip_due(now=now, automation_id=automation_id, match=match))
    return {
        "fired": len(finishes),
        "seconds": time.perf_counter() - t0,
        "claims": claims,
        "finishes": finishes,
        "complete": complete,
        "skip_s": skip_s,
    }


def reset_timers(col: Any, automation_id: str) -> None:
    """Everything of the automation armed again (state pending, no lease) for the next pass."""
    from workflow_service.store.repository import EPOCH

    col.update_many(
        {"automation_id": automation_id, "state": {"$in": ["fired", "skipped"]}},
        {"$set": {"state": "pending", "lease_until": EPOCH}, "$unset": {"worker": "", "fired_at": ""}},
    )


def bench_due_scan(args: argparse.Namespace, report: Report) -> None:
    """Fill `timers` with N pending items of one inactivity automation (1 % due) and time the engine's pass."""
    from crm_runtime.testing import start_store
    from workflow_service.domain.conditions import parse_condition
    from workflow_service.store.repository import MongoWorkflowStore

    n, due_every = args.timers, 100
    print(f"\n3. due scan: {n:,} armed inactivity items, 1 in {due_every} due (a store of its own)", flush=True)
    server = start_store(cache_size="512M")
    try:
        client: MongoClient[Any] = MongoClient(server.url, tz_aware=True)
        db = client[WORKFLOW_DB]
        store = MongoWorkflowStore(db)
        store.ensure_indexes()
        col = db["timers"]
        automation_id = "bench-inactivity"
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = time.perf_counter()
        batch: list[Doc] = []
        for i in range(n):
            due = now - timedelta(minutes=5 + i % 60) if i % due_every == 0 else now + timedelta(hours=1 + i % 47)
            # every other due item meets the condition of (b)
            stage = "initial_contact" if (i // due_every) % 2 == 0 else "negotiation"
            batch.append(timer_doc(automation_id, i, due, now, stage))
            if len(batch) == 1000:
                col.insert_many(batch, ordered=False)
                batch = []
        if batch:
            col.insert_many(batch, ordered=False)
        fill_s = time.perf_counter() - t0
        due_n = (n + due_every - 1) // due_every
        print(f"   filled {n:,} items in {fill_s:.1f} s ({rate(n, fill_s)}) by insert_many of 1,000", flush=True)
        query = {"automation_id": automation_id, "kind": "record", "state": "pending", "due_at": {"$lte": now}}

        def raw_read(at: datetime) -> tuple[float, int]:
            q = {**query, "due_at": {"$lte": at}}
            seconds, found = timed(lambda: len(list(col.find(q))))
            return seconds, found

        raw_reads = [raw_read(now) for _ in range(3)]
        raw_s = min(s for s, _ in raw_reads)

        # (a) the template's 24 h follow-up: no condition, so the claims read the due index
        a = pass_once(store, automation_id=automation_id, now=now, match=None, cap_s=args.scan_cap, cap_n=n)
        per_item = (sum(a["claims"]) + sum(a["finishes"])) / max(1, a["fired"])
        # the claim's model: its own cost with nothing due, plus a share per item still due
        before = now - timedelta(days=30)  # nothing is due then
        idle = [
            timed(
                lambda: store.claim_due(
                    now=before, lease_seconds=120.0, worker="w", automation_id=automation_id, kind="record"
                )
            )[0]
            for _ in range(5)
        ]
        fixed = sorted(idle)[2]
        per_due = max(0.0, mean(a["claims"][:5]) - fixed) / due_n
        if a["complete"]:
            pass_s, how = a["seconds"], "measured"
        else:
            pass_s, how = _projected_pass(fixed, per_due, mean(a["finishes"]), due_n), "projected"
        report.add(
            Row(
                f"due scan, {n:,} armed, {due_n:,} due (1 %)",
                f"{pass_s:,.1f} s a pass ({how}), {rate(due_n, pass_s)}",
                f"find due range {ms(raw_s)} ({raw_reads[0][1]:,} docs)",
                "<= 5 s a pass",
                pass_s <= 5.0 if how == "measured" else False,
            )
        )
        report.note(
            f"due scan (1 %): claim_due until None + finish (the no-op fire), the template's 24 h follow-up shape "
            f"(no condition, so no skip_due): {a['fired']:,} of {due_n:,} fired in {a['seconds']:.1f} s"
            + ("" if a["complete"] else f" (stopped there, after --scan-cap {args.scan_cap:.0f} s; the rest projected)")
            + f"; the first claims {ms(mean(a['claims'][:5]))} each, the last {ms(mean(a['claims'][-5:]))}; "
            f"a claim costs {ms(fixed)} with nothing due (median of 5) + {per_due * 1000:.3f} ms per item still due; finish "
            f"{ms(mean(a['finishes']))}; {ms(per_item)} an item on average. Each claim_due reads the due range once "
            f"and leases up to 1,000 items by update_many of 200 ids, so a pass is linear in the due items. "
            f"Raw: find(automation_id, kind, state, due_at <= now), every document, best of 3."
        )
        reset_timers(col, automation_id)

        # (b) with a condition (the template's stalled opportunity: stage = initial_contact)
        fields = {
            "stage": {
                "key": "stage",
                "type": "select",
                "label": {"zh-CN": "阶段", "en": "Stage"},
                "options": [{"value": v, "label": {"zh-CN": v, "en": v}} for v in ("initial_contact", "negotiation")],
            }
        }
        condition = parse_condition({"field": "stage", "op": "eq", "value": "initial_contact"}, fields)
        assert condition is not None
        match = condition.to_mongo("data.")
        # (b) is measured with the condition pushed into the query (WORKFLOW_PUSH_CONDITIONS=1, meant for MongoDB);
        # the default on SecantusDB claims like (a) and checks the condition on the current record when firing
        b = pass_once(
            store, automation_id=automation_id, now=now, match=match, cap_s=float("inf"), cap_n=args.scan_samples
        )
        claim_b = mean(b["claims"])
        skip_s, skipped = timed(lambda: store.skip_due(now=now, automation_id=automation_id, match=match))
        matching = (due_n + 1) // 2
        # claims of up to 1,000 items each (each a collection scan here), a finish per item, one skip_due
        projected_b = claim_b * ((matching + 999) // 1000) + mean(b["finishes"]) * matching + skip_s
        raw_b, found_b = timed(lambda: sum(1 for d in col.find(query) if condition.matches(d)))
        report.add(
            Row(
                f"due scan, condition pushed into the query, {due_n:,} due",
                f"{projected_b:,.0f} s a pass (projected)",
                f"due range + condition in Python {ms(raw_b)} ({found_b:,})",
                "<= 5 s a pass",
                False if projected_b > 5 else None,
            )
        )
        report.note(
            f"due scan with a condition (stage = initial_contact, compiled by the engine to {json.dumps(match)}, "
            f"met by half the due items): claim_due sends {{$and: [due range, condition]}}, which the store answers "
            f"by scanning the whole collection: {len(b['claims'])} claim(s) measured, {ms(claim_b)} each; skip_due "
            f"(lease_until and $nor are outside the index: a scan too) {ms(skip_s)}, {skipped:,} items skipped; "
            f"projected pass = {(matching + 999) // 1000:,} claim(s) of up to 1,000 + a finish each + one skip_due; "
            f"this is WORKFLOW_PUSH_CONDITIONS=1, meant for MongoDB: the default claims as in the first row and "
            f"checks the condition on the current record when it fires. Raw: the due range read through the "
            f"index, the condition checked in Python (Condition.matches on the snapshot). (Even without the $and, "
            f"one query with data.stage scans: it is outside the index; DESIGN_NOTES, the planner.)"
        )
        reset_timers(col, automation_id)

        # (c) 100 % due: every item of the automation due at a later `now`
        later = now + timedelta(days=3)
        raw_all, found_all = raw_read(later)
        c = pass_once(
            store, automation_id=automation_id, now=later, match=None, cap_s=float("inf"), cap_n=args.scan_samples
        )
        first_c = mean(c["claims"])
        # batches of 1,000: each re-reads the pending due range, which shrinks by 1,000 a batch
        batches = (n + 999) // 1000
        projected_c = first_c * (batches + 1) / 2 + n * mean(c["finishes"])
        report.add(
            Row(
                f"due scan, {n:,} armed, 100 % due",
                f"{projected_c:,.0f} s a pass (projected)",
                f"find due range {ms(raw_all)} ({found_all:,} docs)",
                "<= 5 s a pass",
                False if projected_c > 5 else None,
            )
        )
        report.note(
            f"due scan (100 %): NOT run to the end (it would take hours): {len(c['claims'])} claim(s) measured, "
            f"{ms(first_c)} each with {n:,} due ({(first_c - fixed) / n * 1000:.3f} ms per item due, against "
            f"{per_due * 1000:.3f} ms in the 1 % pass), finish {ms(mean(c['finishes']))}; projected: "
            f"{(n + 999) // 1000:,} batches of 1,000, each reading the pending due range (shrinking by 1,000 a batch), "
            f"plus a finish for each item. Raw: the whole due range read once."
        )
    finally:
        server.stop()


def mean(values: list[float]) -> float:
    """The mean (0 for none)."""
    return sum(values) / len(values) if values else 0.0


def _projected_pass(fixed: float, per_due: float, finish: float, due: int) -> float:
    """A pass over `due` items when a claim costs `fixed` + `per_due` per item still due, and each fired item
    one finish (plus the last claim, which finds nothing)."""
    return due * fixed + per_due * due * (due + 1) / 2 + due * finish + fixed


# ---------------------------------------------------------------- 4: round robin under concurrency


def strong_password() -> str:
    """A password the policy accepts."""
    return "Wfb-" + secrets.token_urlsafe(12) + "-9a"


def bench_round_robin(crm: Crm, args: argparse.Namespace, report: Report) -> None:
    """5 users in a new department, a round-robin automation on the lead form, N leads at once without an owner."""
    from crm.record.v1 import record_pb2, record_pb2_grpc
    from crm_runtime.principal import Principal, PrincipalCodec

    api, leads = crm.api, args.leads
    tenant = crm.tenant
    lead_form = crm.forms["lead"]
    tag = str(ObjectId())[-6:]
    print(f"\n4. round robin: {leads:,} leads created at once ({THREADS} threads) over 5 users", flush=True)
    api.login()
    dept = api.post("/departments", {"name": f"轮询基准组{tag}"})
    users = [
        api.post(
            "/users",
            {
                "username": f"wfb_rr_{tag}_{i}",
                "name": f"轮询销售{i}",
                "password": strong_password(),
                "department_id": dept["id"],
                "roles": ["sales"],
            },
        )["id"]
        for i in range(5)
    ]
    wf = crm.wf
    t0 = time.monotonic()
    while wf["users"].count_documents({"tenant_id": tenant, "department_id": dept["id"]}) < 5:
        if time.monotonic() - t0 > 60:
            raise RuntimeError("the workflow's directory replica did not learn the 5 users within 60 s")
        time.sleep(0.2)
    replica_s = time.monotonic() - t0
    for automation in crm.enabled(lead_form):  # exactly ours on the lead form
        api.request(
            "PATCH",
            f"/automations/{automation['id']}",
            json={"enabled": False, "expected_version": automation["version"]},
        )
    automation = api.post(
        "/automations",
        {
            "name": {"zh-CN": f"基准：新线索轮流分配{tag}", "en": f"bench: round robin new leads {tag}"},
            "form": lead_form,
            "trigger": {"type": "record_created"},
            "condition": {"field": "owner_id", "op": "is_empty"},
            "actions": [{"type": "assign_owner", "strategy": "round_robin", "department": dept["id"]}],
        },
    )
    codec = PrincipalCodec(crm.platform.env["CRM_INTERNAL_SECRET"])
    metadata = Principal.service(tenant, "integration").to_metadata(codec)
    channel = grpc.insecure_channel(crm.platform.env["RECORD_GRPC_ADDR"])
    stub = record_pb2_grpc.RecordServiceStub(channel)
    created: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        data = {"name": f"基准线索{tag}-{i}", "company_name": f"线索公司{i}", "source": "website", "status": "pending"}
        try:
            resp = stub.CreateRecord(
                record_pb2.CreateRecordRequest(form_id=lead_form, data_json=json.dumps(data, ensure_ascii=False)),
                metadata=metadata,
                timeout=120,
            )
            record = json.loads(resp.record_json)
            with lock:
                created.append(record["id"])
                if record.get("owner_id"):
                    errors.append(f"created with an owner: {record['owner_id']}")
        except grpc.RpcError as exc:
            with lock:
                errors.append(f"{exc.code()}: {exc.details()}"[:200])

    start_wall = time.time()
    create_s, _ = timed(lambda: list(ThreadPoolExecutor(THREADS).map(create, range(leads))))
    runs = wf["runs"]
    t0 = time.monotonic()
    while runs_done(runs, tenant, [automation["id"]]) < len(created) and time.monotonic() - t0 < args.leads_budget:
        time.sleep(1.0)
    statuses = run_statuses(runs, tenant, [automation["id"]])
    while statuses.get("retrying") and time.monotonic() - t0 < args.leads_budget:
        time.sleep(1.0)
        statuses = run_statuses(runs, tenant, [automation["id"]])
    finished = last_run_at(runs, tenant, [automation["id"]])
    owners: Counter[str] = Counter()
    mine = set(created)
    records = crm.rec["records"]
    for doc in records.find({"tenant_id": tenant, "form_id": lead_form, "deleted": False}, {"owner_id": 1}):
        if doc["_id"] in mine:
            owners[str(doc.get("owner_id") or "")] += 1
    counts = [owners.get(u, 0) for u in sorted(users)]
    unassigned = owners.get("", 0)
    raw = raw_round_robin(crm.wf.client, leads)
    exact = all(c == leads // 5 for c in counts) and unassigned == 0 and len(created) == leads
    span = (finished.timestamp() - start_wall) if finished else float("nan")
    report.add(
        Row(
            f"{leads:,} concurrent leads over 5 users",
            "/".join(str(c) for c in counts) + (f", {unassigned} unassigned" if unassigned else ""),
            "/".join(str(c) for c in raw["counts"]) + f" in {raw['seconds']:.1f} s (CAS)",
            f"exactly {leads // 5} each",
            exact,
        )
    )
    report.note(
        f"round robin: {len(created):,} leads created over gRPC (service principal, no owner) from {THREADS} threads "
        f"in {create_s:.1f} s ({rate(len(created), create_s)}); the first create -> the last assignment logged "
        f"{span:.1f} s; runs {', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))}; the replica learned "
        f"the 5 users {replica_s:.1f} s after their creation."
        + (f" Errors: {errors[:3]}" if errors else "")
        + f" Raw, on the workflow's store from {PREFETCH} threads (the worker's handlers at once): {leads:,} turns of "
        f"next_pointer's compare-and-set loop on one document (find_one + update_one on the value read), turns "
        f"mod 5 counted, {raw['attempts']:.1f} attempts a turn. (find_one_and_update $inc is no alternative on "
        f"this store: of {raw['inc_turns']} concurrent calls, {raw['inc_twice']} returned a value another call "
        f"had returned too.)"
    )
    channel.close()


def raw_round_robin(client: MongoClient[Any], turns: int, inc_turns: int = 200) -> Doc:
    """The round-robin turn with the raw driver, from as many threads as the worker runs handlers (PREFETCH):
    `turns` of next_pointer's compare-and-set loop (find_one, update_one on the value read, again until it
    matches) with the turns mod 5 counted and the attempts; and `inc_turns` atomic-looking $inc by
    find_one_and_update, counting the turns handed out twice."""
    from pymongo import ReturnDocument

    col = client["bench_raw"]["pointer"]
    col.drop()
    col.insert_many([{"_id": "cas", "n": 0}, {"_id": "inc", "n": 0}])
    slots: Counter[int] = Counter()
    handed: Counter[int] = Counter()
    attempts = 0
    lock = threading.Lock()

    def cas(_i: int) -> None:
        nonlocal attempts
        while True:
            current = int(col.find_one({"_id": "cas"})["n"])
            with lock:
                attempts += 1
            if col.update_one({"_id": "cas", "n": current}, {"$set": {"n": current + 1}}).modified_count:
                with lock:
                    slots[current % 5] += 1
                return

    def inc(_i: int) -> None:
        before = col.find_one_and_update({"_id": "inc"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.BEFORE)
        with lock:
            handed[int(before["n"])] += 1

    with ThreadPoolExecutor(PREFETCH) as pool:
        cas_s, _ = timed(lambda: list(pool.map(cas, range(turns))))
        list(pool.map(inc, range(inc_turns)))
    col.drop()
    return {
        "counts": [slots.get(i, 0) for i in range(5)],
        "seconds": cas_s,
        "attempts": attempts / turns,
        "inc_turns": inc_turns,
        "inc_twice": sum(v - 1 for v in handed.values() if v > 1),
    }


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="1,2,3,4", help="which figures, e.g. 3 or 1,4 (default all)")
    parser.add_argument("--latency-samples", type=int, default=200, help="customers of figure 1 (default 200)")
    parser.add_argument("--events", type=int, default=10_000, help="records of figure 2 (default 10,000)")
    parser.add_argument(
        "--events-budget", type=float, default=120, help="seconds to wait for figure 2's runs (default 120)"
    )
    parser.add_argument("--timers", type=int, default=100_000, help="armed items of figure 3 (default 100,000)")
    parser.add_argument(
        "--scan-cap", type=float, default=45, help="seconds before figure 3's 1 %% pass is projected (default 45)"
    )
    parser.add_argument("--scan-samples", type=int, default=1, help="claims measured of the projected passes (1)")
    parser.add_argument("--leads", type=int, default=1000, help="leads of figure 4 (default 1,000)")
    parser.add_argument("--leads-budget", type=float, default=180, help="seconds to wait for figure 4 (180)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated records")
    return parser.parse_args()


@contextmanager
def platform_running(needed: bool) -> Iterator[Platform | None]:
    """A private platform for the figures that need one."""
    if not needed:
        yield None
        return
    print("starting a private platform (stores, services, relays, workflow API + worker, gateway)...", flush=True)
    platform = start_platform()
    try:
        yield platform
    except Exception:
        for name in platform.units:
            print(f"--- {name} log (tail)\n{platform.logs(name)}", file=sys.stderr)
        raise
    finally:
        platform.stop()


def main() -> int:
    """Run the chosen figures, print the table."""
    args = parse_args()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    command = os.environ.get("BENCH_COMMAND") or " ".join([Path(sys.executable).name, *sys.argv])
    report = Report()
    started, load = time.monotonic(), os.getloadavg()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC | {os.cpu_count()} CPU cores shared by stores, services, broker and "
        f"the bench | python {sys.version.split()[0]}"
    )
    print("\n" + Report.HEADER + "\n" + "-" * len(Report.HEADER), flush=True)
    if 3 in only:  # no platform: run it first, alone on the machine
        bench_due_scan(args, report)
    with platform_running(bool(only & {1, 2, 4})) as platform:
        if platform is not None:
            crm = Crm.connect(platform)
            print(f"   {store_version(crm.rec.client)}", flush=True)
            tap = EventTap(platform.env["AMQP_URL"]).start()
            try:
                if 1 in only:
                    bench_latency(crm, tap, args.latency_samples, report)
                if 2 in only:
                    bench_throughput(crm, tap, args, report)
                if 4 in only:
                    bench_round_robin(crm, args, report)
            finally:
                tap.stop()
    report.note(
        f"the whole run took {time.monotonic() - started:,.0f} s; load average (1 min) {load[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores (other processes on this machine count)"
    )
    report.print_table(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
