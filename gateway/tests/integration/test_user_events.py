"""user.* directory events: written with the user change, backfilled once, relayed to gateway.events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika
import pytest

from crm_runtime.testing import amqp_url
from gateway.outbox import BACKFILL_FLAG, EXCHANGE, build_relay
from gateway.seed import seed_directory

pytestmark = pytest.mark.integration


def _events(gw_store: Any) -> list[dict[str, Any]]:
    docs = list(gw_store.outbox.find({}))
    docs.sort(key=lambda d: d["event"]["occurred_at"])
    return [d["event"] for d in docs]


def test_user_writes_enqueue_directory_events(client: Any, helpers: Any, admin_token: str, gw_store: Any) -> None:
    h = helpers.bearer(admin_token)
    admin_id = gw_store.users.find_one({"username": "admin"})["_id"]
    depts = {d["name"]: d["id"] for d in client.get("/api/v1/departments", headers=h).get_json()["items"]}
    gw_store.outbox.delete_many({})
    user = client.post(
        "/api/v1/users",
        json={"username": "zhou", "name": "周", "password": "Secret-123", "department_id": depts["财务部"]},
        headers=h,
    ).get_json()
    client.patch(f"/api/v1/users/{user['id']}", json={"phone": "13800138000"}, headers=h)  # not replicated
    client.patch(f"/api/v1/users/{user['id']}", json={"email": "z@example.com"}, headers=h)  # the workflow's mail
    client.patch(f"/api/v1/users/{user['id']}", json={"department_id": depts["销售部"]}, headers=h)
    client.patch(f"/api/v1/users/{user['id']}", json={"active": False}, headers=h)
    client.delete(f"/api/v1/users/{user['id']}", headers=h)
    events = _events(gw_store)
    assert [e["type"] for e in events] == [
        "user.created",
        "user.updated",
        "user.updated",
        "user.updated",
        "user.deleted",
    ]
    assert all(e["source"] == "gateway" and e["tenant_id"] == "default" and e["actor"] == admin_id for e in events)
    assert events[0]["data"] == {
        "user_id": user["id"],
        "username": "zhou",
        "name": "周",
        "department_id": depts["财务部"],
        "active": True,
        "manager_id": "",
        "roles": ["sales"],
        "email": "",
    }
    assert events[1]["data"]["email"] == "z@example.com"
    assert events[2]["data"]["department_id"] == depts["销售部"]
    assert events[3]["data"]["active"] is False
    assert events[4]["data"]["user_id"] == user["id"]
    assert all(d["published"] is False for d in gw_store.outbox.find({}))


def test_a_refused_write_enqueues_nothing(client: Any, helpers: Any, admin_token: str, gw_store: Any) -> None:
    gw_store.outbox.delete_many({})
    h = helpers.bearer(admin_token)
    assert (
        client.post("/api/v1/users", json={"username": "admin", "password": "Secret-123"}, headers=h).status_code == 409
    )
    assert gw_store.outbox.count_documents({}) == 0


def test_existing_users_are_backfilled_once(settings: Any, gw_store: Any) -> None:
    gw_store.meta.delete_many({})
    gw_store.outbox.delete_many({})
    gw_store.users.insert_one(
        {"_id": "u-old", "tenant_id": "default", "username": "old", "role": "sales", "department_id": "d1"}
    )
    seed_directory(settings, gw_store)
    events = _events(gw_store)
    assert sorted(e["data"]["username"] for e in events) == ["admin", "old"]
    assert {e["type"] for e in events} == {"user.updated"}
    assert gw_store.meta.find_one({"_id": BACKFILL_FLAG})["events"] == 2
    seed_directory(settings, gw_store)
    assert gw_store.outbox.count_documents({}) == 2


def test_the_relay_publishes_to_gateway_events_and_marks_sent(
    client: Any, helpers: Any, admin_token: str, gw_store: Any
) -> None:
    gw_store.outbox.delete_many({})
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    channel = conn.channel()
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True, auto_delete=False)
    queue = f"test-gateway-events-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue=queue, exclusive=True)
    channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key="user.*")
    try:
        made = client.post(
            "/api/v1/users", json={"username": "sun", "password": "Secret-123"}, headers=helpers.bearer(admin_token)
        ).get_json()
        relay = build_relay(gw_store, amqp_url())
        assert relay.run_once() == 1
        assert gw_store.outbox.count_documents({"published": False}) == 0
        body = None
        deadline = time.monotonic() + 10
        while body is None and time.monotonic() < deadline:
            method, props, body = channel.basic_get(queue=queue, auto_ack=True)
            if body is None:
                time.sleep(0.1)
        assert body is not None
        envelope = json.loads(body)
        assert method.routing_key == "user.created" and props.message_id == envelope["id"]
        assert envelope["data"]["user_id"] == made["id"] and envelope["source"] == "gateway"
        assert relay.run_once() == 0
    finally:
        conn.close()
