"""Benchmarks: the platform through REST beside the raw driver on the same store.

Starts a private platform (tests/support/launcher.py: its own SecantusDB
process, the services, the relay and the gateway), then prints, for each
figure, our number, the raw pymongo number on the same store in the same run,
and their ratio. Targets (issue #2):

1. create through REST, 16 clients vs raw insert_one from 16 threads:
   throughput ratio >= 0.30, p95 latency ratio <= 4
2. bulk create of 10,000 through the bulk endpoint vs raw insert_many in
   batches of 1,000: ratio >= 0.50 (history and events included in ours)
3. a filtered, sorted page of 50 from 100,000 records vs the same
   find().sort().limit(): p95 ratio <= 2
4. Chinese keyword search over the same 100,000: p95 <= 300 ms (absolute)
5. access control (issue #6): the same page of 50 as a user whose role has a
   department scope, a condition and 3 hidden fields, vs as admin: p95 ratio
   <= 1.3; and the cost of the per-request session check (session + user read)

Usage: `make bench` (or `.venv/bin/python bench/run.py --records 100000`).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from bson import ObjectId
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.launcher import Platform, start_platform  # noqa: E402

CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "西安", "天津", "重庆"]
WORDS = [
    "华信",
    "恒通",
    "东方",
    "金桥",
    "瑞丰",
    "博远",
    "天成",
    "宏达",
    "新元",
    "中科",
    "锦程",
    "汇智",
    "星辰",
    "九州",
    "海纳",
    "远航",
    "明德",
    "正泰",
    "安盛",
    "嘉禾",
    "鼎盛",
    "腾飞",
    "诚信",
    "联创",
    "凯旋",
    "永泰",
    "万达",
    "和润",
    "盈科",
    "信达",
    "华泰",
    "中联",
    "同创",
    "智云",
    "数联",
    "卓越",
    "盛世",
    "龙腾",
    "光大",
    "合众",
]
TRADES = ["科技", "贸易", "制造", "物流", "咨询", "软件", "电子", "医疗", "教育", "建设"]
SUFFIX = ["有限公司", "股份有限公司", "集团有限公司"]
LEVELS = ["A", "B", "C"]


def p95(samples: list[float]) -> float:
    """95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def company(i: int, rnd: random.Random) -> str:
    """A unique, realistic company name."""
    return f"{rnd.choice(CITIES)}{rnd.choice(WORDS)}{rnd.choice(WORDS)}{rnd.choice(TRADES)}{rnd.choice(SUFFIX)}{i}号"


class Api:
    """A logged-in REST client."""

    def __init__(self, platform: Platform, *, username: str = "admin", password: str | None = None) -> None:
        self.base = platform.base_url + "/api/v1"
        self.session = requests.Session()
        self._username = username
        self._password = password or platform.admin_password
        self.headers: dict[str, str] = {}
        self.login()

    def login(self) -> None:
        """(Re-)login: the access token lives 15 minutes, a full run takes longer."""
        resp = self.session.post(
            self.base + "/auth/login", json={"username": self._username, "password": self._password}, timeout=30
        )
        resp.raise_for_status()
        self.headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def post(self, path: str, body: Any, session: requests.Session | None = None) -> Any:
        """POST JSON, raise on error."""
        resp = (session or self.session).post(self.base + path, json=body, headers=self.headers, timeout=600)
        if resp.status_code == 401:
            self.login()
            resp = (session or self.session).post(self.base + path, json=body, headers=self.headers, timeout=600)
        if resp.status_code >= 300:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()

    def get(self, path: str, params: dict[str, Any] | None = None, session: requests.Session | None = None) -> Any:
        """GET JSON, raise on error."""
        resp = (session or self.session).get(self.base + path, params=params, headers=self.headers, timeout=600)
        if resp.status_code == 401:
            self.login()
            resp = (session or self.session).get(self.base + path, params=params, headers=self.headers, timeout=600)
        if resp.status_code >= 300:
            raise RuntimeError(f"GET {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()


def raw_collection(client: MongoClient[Any], name: str) -> Any:
    """A collection with the same indexes as the record store's records collection."""
    records = client["crm_record"]["records"]
    raw = client["bench_raw"][name]
    raw.drop()
    for index in records.list_indexes():
        if index["name"] == "_id_":
            continue
        options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
        raw.create_index(list(index["key"].items()), **options)
    return raw


def sample_doc(client: MongoClient[Any]) -> dict[str, Any]:
    """A stored record as the service wrote it, to give raw inserts the same shape."""
    doc = client["crm_record"]["records"].find_one({})
    assert doc is not None
    return doc


def concurrent_calls(fn: Any, total: int, clients: int) -> tuple[float, list[float]]:
    """Run fn(i) `total` times from `clients` threads; return (seconds, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            fn(i)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    return time.perf_counter() - start, latencies


def line(name: str, ours: str, raw: str, ratio: float, target: str, ok: bool) -> None:
    """Print one result row."""
    print(
        f"{name:<46} ours {ours:>16}   raw {raw:>16}   ratio {ratio:6.2f}   target {target:<8} {'MET' if ok else 'MISSED'}"
    )


def bench_create(api: Api, client: MongoClient[Any], form: str, n: int, start: int = 10_000_000) -> None:
    """1. single creates, 16 clients (customer names numbered from `start`)."""
    rnd = random.Random(1)
    sessions = threading.local()

    def ours(i: int) -> None:
        s = getattr(sessions, "s", None) or requests.Session()
        sessions.s = s
        api.post(f"/forms/{form}/records", {"data": {"customer_name": company(start + i, rnd), "level": "A"}}, s)

    # warm-up, not measured: every gateway worker's channel, the form cache
    concurrent_calls(lambda i: ours(n + i), 48, 16)
    seconds, lat = concurrent_calls(ours, n, 16)
    template = sample_doc(client)
    raw = raw_collection(client, "create")

    def raw_insert(i: int) -> None:
        doc = dict(template)
        doc["_id"] = str(ObjectId())
        raw.insert_one(doc)

    concurrent_calls(raw_insert, 48, 16)  # the same warm-up
    raw_seconds, raw_lat = concurrent_calls(raw_insert, n, 16)
    ours_tp, raw_tp = n / seconds, n / raw_seconds
    line(
        "1. create via REST, 16 clients: throughput",
        f"{ours_tp:.0f}/s",
        f"{raw_tp:.0f}/s",
        ours_tp / raw_tp,
        ">=0.30",
        ours_tp / raw_tp >= 0.30,
    )
    r = p95(lat) / p95(raw_lat)
    line("   create p95 latency", f"{p95(lat) * 1000:.1f} ms", f"{p95(raw_lat) * 1000:.1f} ms", r, "<=4", r <= 4)


def bench_bulk(api: Api, client: MongoClient[Any], form: str, total: int, start_index: int) -> float:
    """2. bulk create in requests of 10,000 vs raw insert_many of 1,000; returns our docs/s."""
    rnd = random.Random(2)
    rows_all = [
        {"customer_name": company(start_index + i, rnd), "level": LEVELS[i % 3], "source": "官网" if i % 2 else "展会"}
        for i in range(total)
    ]
    t0 = time.perf_counter()
    for off in range(0, total, 10_000):
        api.post(f"/forms/{form}/records/bulk", {"records": rows_all[off : off + 10_000]})
    ours_s = time.perf_counter() - t0
    drained, pending = wait_relay(client)
    print(
        f"   (bulk: {pending:,} of {total:,} events still in the outbox when the call returned; "
        f"all published with confirms {drained:.1f} s later)"
    )
    # the raw side inserts copies of the very records we stored (same size, same
    # index keys) into a collection with the same indexes
    raw = raw_collection(client, "bulk")
    stored = client["crm_record"]["records"].find({"form_id": form}).limit(min(total, 10_000))
    docs = [{**d, "_id": str(ObjectId())} for d in stored]
    t0 = time.perf_counter()
    for off in range(0, len(docs), 1000):
        raw.insert_many(docs[off : off + 1000], ordered=False)
    raw_s = (time.perf_counter() - t0) * (total / len(docs))
    ours_rate, raw_rate = total / ours_s, total / raw_s
    ratio = ours_rate / raw_rate
    line(
        f"2. bulk create {total:,} (history+outbox incl.)",
        f"{ours_rate:.0f} docs/s",
        f"{raw_rate:.0f} docs/s",
        ratio,
        ">=0.50",
        ratio >= 0.5,
    )
    return ours_rate


def wait_relay(client: MongoClient[Any], timeout: float = 600) -> tuple[float, int]:
    """(seconds until the outbox is drained, envelopes pending when we started waiting)."""
    t0 = time.perf_counter()
    history = client["crm_record"]["history"]
    pending = history.count_documents({"published": False})
    while history.find_one({"published": False}, {"_id": 1}) is not None:
        if time.perf_counter() - t0 > timeout:
            break
        time.sleep(0.5)
    return time.perf_counter() - t0, pending


def bench_list(api: Api, client: MongoClient[Any], form_id: str, tenant: str, reps: int) -> None:
    """3. filtered, sorted page of 50."""
    flt = '{"and": [{"field": "level", "op": "eq", "value": "B"}]}'
    lat = []
    for _ in range(reps):
        t0 = time.perf_counter()
        api.get(f"/forms/{form_id}/records", {"filter": flt, "sort": "-created_at", "page_size": 50, "count": "none"})
        lat.append(time.perf_counter() - t0)
    records = client["crm_record"]["records"]
    raw_lat = []
    for _ in range(reps):
        t0 = time.perf_counter()
        list(
            records.find({"tenant_id": tenant, "form_id": form_id, "deleted": False, "data.level": "B"})
            .sort([("created_at", -1), ("_id", -1)])
            .limit(51)
        )
        raw_lat.append(time.perf_counter() - t0)
    r = p95(lat) / p95(raw_lat)
    line(
        "3. filtered sorted page of 50: p95",
        f"{p95(lat) * 1000:.0f} ms",
        f"{p95(raw_lat) * 1000:.0f} ms",
        r,
        "<=2",
        r <= 2,
    )
    lat_c = []
    for _ in range(max(3, reps // 3)):
        t0 = time.perf_counter()
        body = api.get(f"/forms/{form_id}/records", {"filter": flt, "sort": "-created_at", "page_size": 50})
        lat_c.append(time.perf_counter() - t0)
    print(
        f"   same page with the capped count (total_display={body.get('total_display')}): p95 {p95(lat_c) * 1000:.0f} ms"
    )


def bench_keyword(api: Api, form_id: str, reps: int) -> None:
    """4. Chinese keyword search."""
    rnd = random.Random(4)
    lat = []
    hits = []
    for _ in range(reps):
        word = rnd.choice(WORDS)
        t0 = time.perf_counter()
        body = api.get(f"/forms/{form_id}/records", {"q": word, "page_size": 50, "count": "none"})
        lat.append(time.perf_counter() - t0)
        hits.append(len(body["items"]))
    ok = p95(lat) <= 0.3
    print(
        f"{'4. keyword search (e.g. 华信): p95':<46} ours {p95(lat) * 1000:>13.0f} ms   target <=300 ms  {'MET' if ok else 'MISSED'}  (median {statistics.median(lat) * 1000:.0f} ms, {min(hits)}-{max(hits)} hits/page)"
    )
    extra: dict[str, list[float]] = {
        "two words (e.g. 华信恒通)": [],
        "with the capped count": [],
        "page 2 by cursor": [],
    }
    for _ in range(max(3, reps // 3)):
        first, second = rnd.choice(WORDS), rnd.choice(WORDS)
        for label, params in (
            ("two words (e.g. 华信恒通)", {"q": first + second, "count": "none"}),
            ("with the capped count", {"q": first}),
        ):
            t0 = time.perf_counter()
            body = api.get(f"/forms/{form_id}/records", {**params, "page_size": 50})
            extra[label].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        api.get(
            f"/forms/{form_id}/records", {"q": first, "page_size": 50, "count": "none", "cursor": body["next_cursor"]}
        )
        extra["page 2 by cursor"].append(time.perf_counter() - t0)
    print("   " + "; ".join(f"{k}: p95 {p95(v) * 1000:.0f} ms" for k, v in extra.items()))


def bench_access(api: Api, platform: Platform, form_id: str, reps: int) -> None:
    """5. a scoped, conditioned, field-restricted user's page vs the admin's; the session check's cost."""
    me = api.get("/me")
    dept = me.get("department_id") or ""
    role = {
        "key": "bench_region",
        "name": "区域销售(bench)",
        "permissions": {
            "default": {
                "actions": ["view", "create", "edit"],
                "scope": "department",
                "condition": {"field": "level", "op": "eq", "value": {"$user": "attr.level"}},
                "fields": {"address": "hidden", "remark": "hidden", "tags": "hidden"},
            }
        },
    }
    api.post("/roles", role)
    password = "Bench-" + str(ObjectId()) + "-x"
    api.post(
        "/users",
        {
            "username": "bench_region",
            "name": "区域销售",
            "password": password,
            "department_id": dept,
            "roles": ["bench_region"],
            "attributes": {"level": "B"},
        },
    )
    user = Api(platform, username="bench_region", password=password)
    params = {"page_size": 50, "count": "none"}
    for who in (api, user):  # warm both
        for _ in range(3):
            who.get(f"/forms/{form_id}/records", params)
    admin_lat, user_lat = [], []
    body: Any = {}
    for _ in range(reps):
        for who, lat in ((api, admin_lat), (user, user_lat)):
            t0 = time.perf_counter()
            body = who.get(f"/forms/{form_id}/records", params)
            lat.append(time.perf_counter() - t0)
    items = body.get("items") or []
    assert all(i["data"].get("level") == "B" and "address" not in i["data"] for i in items), "scope not applied"
    r = p95(user_lat) / p95(admin_lat)
    line(
        "5. page of 50, scoped user vs admin: p95",
        f"{p95(user_lat) * 1000:.0f} ms",
        f"{p95(admin_lat) * 1000:.0f} ms",
        r,
        "<=1.3",
        r <= 1.3,
    )
    print(f"   (the 'raw' column here is the admin through the same API; {len(items)} rows on the scoped page)")
    me_lat = []
    for _ in range(max(reps, 50)):
        t0 = time.perf_counter()
        user.get("/me")
        me_lat.append(time.perf_counter() - t0)
    print(
        f"   GET /me (session check + principal, no backend call): median {statistics.median(me_lat) * 1000:.1f} ms, p95 {p95(me_lat) * 1000:.1f} ms"
    )
    session_check_cost(platform, user.headers["Authorization"].split(" ", 1)[1])


def session_check_cost(platform: Platform, token: str, n: int = 500) -> None:
    """The per-request check alone: gateway.auth.authenticate (token, session, user, department tree, policy)."""
    from gateway.auth import authenticate
    from gateway.clients import Services
    from gateway.context import Gateway
    from gateway.metrics import Metrics
    from gateway.settings import Settings
    from gateway.store import GatewayStore

    env = platform.env
    settings = Settings(jwt_secret=env["JWT_SECRET"], mongo_url=env["MONGO_URL"])
    store = GatewayStore.connect(env["MONGO_URL"], "crm_gateway")
    gw = Gateway.build(settings, store, Services.grpc(env["FORM_GRPC_ADDR"], env["RECORD_GRPC_ADDR"]), Metrics())
    assert authenticate(gw, token) is not None, "the scoped user's token should authenticate"
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        authenticate(gw, token)
        lat.append(time.perf_counter() - t0)
    print(
        f"   per-request session check (gateway.auth.authenticate: JWT, session, user, department tree, cached policy): median {statistics.median(lat) * 1000:.2f} ms, p95 {p95(lat) * 1000:.2f} ms"
    )


def main() -> int:
    """Run all four benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records for the list and search figures")
    parser.add_argument("--creates", type=int, default=1000, help="single creates for figure 1")
    parser.add_argument("--reps", type=int, default=30, help="repetitions of each query")
    parser.add_argument("--only-access", action="store_true", help="figure 5 only, on --records customers")
    args = parser.parse_args()
    print("starting a private platform (store, services, relay, gateway)...", flush=True)
    platform = start_platform()
    try:
        client: MongoClient[Any] = MongoClient(platform.env["MONGO_URL"])
        api = Api(platform)
        form = api.get("/forms/customer")
        form_id = form.get("id") or form["form"]["id"]
        me = api.get("/me")
        tenant = me.get("tenant_id") or me["tenant"]["id"]
        print(f"store: SecantusDB at {platform.env['MONGO_URL']}; CPU cores: 2 shared by store, services and load\n")
        loaded = 0
        if not args.only_access:
            bench_create(api, client, form_id, args.creates)
            bench_bulk(api, client, form_id, 10_000, 0)
            loaded = 10_000 + args.creates
        remaining = args.records - loaded
        if remaining > 0:
            print(f"loading {remaining:,} more customers through the bulk endpoint...", flush=True)
            t0 = time.perf_counter()
            for off in range(0, remaining, 10_000):
                rnd = random.Random(off)
                rows = [
                    {"customer_name": company(1_000_000 + off + i, rnd), "level": LEVELS[i % 3]}
                    for i in range(min(10_000, remaining - off))
                ]
                api.post(f"/forms/{form_id}/records/bulk", {"records": rows})
            print(f"   loaded in {time.perf_counter() - t0:.0f} s")
            drained, pending = wait_relay(client, 1800)
            print(f"   outbox: {pending:,} events pending after loading, published {drained:.0f} s later")
        total = client["crm_record"]["records"].count_documents({"tenant_id": tenant, "form_id": form_id})
        print(f"customers stored: {total:,}")
        if not args.only_access:
            bench_list(api, client, form_id, tenant, args.reps)
            bench_keyword(api, form_id, args.reps)
        bench_access(api, platform, form_id, args.reps)
        return 0
    except Exception:
        # the platform's logs go with its temporary directory: show them first
        for name in platform.units:
            print(f"--- {name} log (tail)\n{platform.logs(name)}", file=sys.stderr)
        raise
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
