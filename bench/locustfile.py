"""The mixed load of issue #7: 50 users on 5,000 customers, closed loop, no think time.

Mix: 60 % list/keyword/filter (the default list, a keyword search, a select
filter sorted by a date), 20 % the 360° view of a customer, 20 % create/update.
Each simulated user logs in once (its own session and token, as 50 people
would) and then sends its next request as soon as the last one answered.

Run by `bench/run.py` (`make bench`, `make load`), which sets up the workload and
passes it in the environment:

    BENCH_USERNAME, BENCH_PASSWORD   the login
    BENCH_FORM                       the customer form's id
    BENCH_IDS                        a JSON file: [{"id", "version"}, ...] of the loaded customers
    BENCH_RELATED                    a JSON file: ids of customers that have follow-ups (360° targets)

By hand: `locust -f bench/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import KEYWORDS, LEVELS, customer_row, level_filter  # noqa: E402

API = "/api/v1"
_FORM = os.environ.get("BENCH_FORM", "")
_IDS: list[dict[str, Any]] = json.loads(Path(os.environ["BENCH_IDS"]).read_text()) if "BENCH_IDS" in os.environ else []
_RELATED: list[str] = json.loads(Path(os.environ["BENCH_RELATED"]).read_text()) if "BENCH_RELATED" in os.environ else []
_numbers = itertools.count()


class CrmUser(FastHttpUser):
    """One person using the CRM screens."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Log in; take this user's own slice of customers to update (no two users edit one record)."""
        self.number = next(_numbers)
        self.rnd = random.Random(self.number)
        resp = self.client.post(
            API + "/auth/login",
            json={"username": os.environ["BENCH_USERNAME"], "password": os.environ["BENCH_PASSWORD"]},
            name="login",
        )
        self.headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        users = max(1, int(os.environ.get("BENCH_USERS", "50")))
        self.mine = {d["id"]: int(d["version"]) for d in _IDS[self.number % users :: users]}
        self.created = 0

    def _get(self, path: str, params: dict[str, Any], name: str) -> None:
        query = ("?" + urlencode(params)) if params else ""
        self.client.get(API + path + query, headers=self.headers, name=name)

    @task(20)
    def default_list(self) -> None:
        """The default list: newest first, no filter, with the capped count."""
        self._get(f"/forms/{_FORM}/records", {"page_size": 50}, "list: default page")

    @task(20)
    def keyword(self) -> None:
        """A keyword search."""
        self._get(f"/forms/{_FORM}/records", {"q": self.rnd.choice(KEYWORDS), "page_size": 50}, "list: keyword")

    @task(20)
    def filtered(self) -> None:
        """A select filter sorted by the signed date."""
        params = {"filter": level_filter(self.rnd.choice(LEVELS)), "sort": "-signed_on", "page_size": 50}
        self._get(f"/forms/{_FORM}/records", params, "list: filter + sort")

    @task(20)
    def view_360(self) -> None:
        """The 360° view of a customer (one with follow-ups when there are some)."""
        pool = _RELATED or [d["id"] for d in _IDS]
        self._get(f"/records/{self.rnd.choice(pool)}/360", {}, "360 view")

    @task(10)
    def create(self) -> None:
        """A new customer."""
        row = customer_row(50_000_000 + self.number * 1_000_000 + self.created, self.rnd)
        self.created += 1
        self.client.post(API + f"/forms/{_FORM}/records", json={"data": row}, headers=self.headers, name="create")

    @task(10)
    def update(self) -> None:
        """Change the status and next visit of one of this user's customers."""
        if not self.mine:
            self.create()
            return
        record_id = self.rnd.choice(list(self.mine))
        row = customer_row(self.rnd.randrange(10**6), self.rnd)
        body = {
            "data": {"status": row["status"], "next_visit_at": row["next_visit_at"]},
            "version": self.mine[record_id],
        }
        with self.client.patch(
            API + f"/records/{record_id}", json=body, headers=self.headers, name="update", catch_response=True
        ) as resp:
            if resp.status_code == 200:
                self.mine[record_id] = int(resp.json()["version"])
                resp.success()
            else:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
