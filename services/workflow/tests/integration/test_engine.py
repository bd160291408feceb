"""The flow engine on the real store (SecantusDB), with plain fakes of the record and form services.

Each event delivered several times does its work once; round robin gives every user exactly their share
under concurrency; two workers sweeping at once fire a due item once; a failed action is retried with
backoff, then dead-lettered and replayed; a self-triggering automation is cut at the depth limit;
inactivity and date timers are armed, moved, cancelled and filtered by the compiled condition.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import pytest

from crm_runtime.errors import NotFound, ValidationFailed
from crm_runtime.principal import Principal
from services.workflow.tests.integration.support import ADMIN, SALES, TENANT, World
from workflow_service.domain.engine import Engine, record_timer_id
from workflow_service.domain.ports import DirectoryUser

pytestmark = pytest.mark.integration

TASK_ON_OWNER = {
    "name": "新客户任务",
    "form": "customer",
    "trigger": {"type": "owner_assigned"},
    "actions": [
        {
            "type": "create_record",
            "form": "task",
            "values": {
                "title": "【新客户跟进】{客户名称}",
                "assignee": "{owner_id}",
                "customer": "{id}",
                "due_at": "{now+3d}",
            },
        }
    ],
}
ROUND_ROBIN = {
    "name": "官网客户轮流分配",
    "form": "customer",
    "trigger": {"type": "record_created"},
    "condition": {"and": [{"field": "source", "op": "eq", "value": "官网"}, {"field": "owner_id", "op": "is_empty"}]},
    "actions": [{"type": "assign_owner", "strategy": "round_robin", "department": "d-team1"}],
}


def tasks(world: World) -> list[dict[str, Any]]:
    return [r for r in world.records.records.values() if r["form_id"] == "f-task"]


def test_an_event_delivered_three_times_creates_one_task_and_makes_one_assignment(world: World) -> None:
    world.uc.create(ADMIN, TASK_ON_OWNER)
    world.uc.create(ADMIN, ROUND_ROBIN)
    created = world.records.add(TENANT, "customer", {"customer_name": "华信恒通", "source": "website"})
    world.records.events.clear()

    for _ in range(3):
        world.engine.handle_event(created)
    owner_events = [e for e in world.records.events if e["type"] == "record.owner_changed"]
    assert len(owner_events) == 1
    for _ in range(3):
        world.engine.handle_event(owner_events[0])

    customer = world.records.records[created["data"]["record_id"]]
    assert customer["owner_id"] in SALES
    [task] = tasks(world)
    assert task["data"]["title"] == "【新客户跟进】华信恒通"
    assert task["data"]["assignee"] == customer["owner_id"] and task["owner_id"] == customer["owner_id"]
    runs, _ = world.uc.runs(ADMIN, record_id=customer["id"])
    assert sorted(r["status"] for r in runs) == ["done", "done"]
    assert all(r["automation_version"] == 1 for r in runs)


def test_round_robin_gives_a_thousand_concurrent_leads_two_hundred_each(world: World) -> None:
    world.uc.create(ADMIN, ROUND_ROBIN)
    events = [
        world.records.add(TENANT, "customer", {"customer_name": f"客户{i}", "source": "website"}) for i in range(1000)
    ]
    world.records.events.clear()

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(world.engine.handle_event, events))

    owners: dict[str, int] = {}
    for record in world.records.records.values():
        owners[record["owner_id"]] = owners.get(record["owner_id"], 0) + 1
    assert owners == {user: 200 for user in SALES}


def test_inactive_users_are_skipped_and_the_owner_changes_once(world: World) -> None:
    world.uc.create(ADMIN, ROUND_ROBIN)
    for user_id in SALES[1:]:
        world.store.put_user(DirectoryUser(TENANT, user_id, "离职", department_id="d-team1", active=False))
    for i in range(3):
        world.engine.handle_event(
            world.records.add(TENANT, "customer", {"customer_name": f"c{i}", "source": "website"})
        )
    assert {r["owner_id"] for r in world.records.records.values()} == {SALES[0]}


def test_a_failed_action_is_retried_then_dead_lettered_and_a_replay_runs_it_once(world: World) -> None:
    world.uc.create(ADMIN, TASK_ON_OWNER)
    world.records.fail_creates = 3  # the first try and both retries fail
    event = world.records.add(TENANT, "customer", {"customer_name": "远景"}, owner_id=SALES[0])
    world.records.events.clear()

    [run_id] = world.engine.handle_event(event)
    run = world.store.run(run_id)
    assert run is not None and run["status"] == "retrying" and run["retry"]["attempt"] == 1
    assert world.engine.sweep() == 0  # not due yet
    for attempt in (1, 2):
        world.clock_now += timedelta(seconds=60 * 2**attempt)
        assert world.engine.sweep() == 1
    run = world.store.run(run_id)
    assert run is not None and run["status"] == "failed" and "record service down" in run["message"]
    [letter], _ = world.uc.dead_letters(ADMIN)
    assert letter["attempts"] == 3 and letter["action_type"] == "create_record" and letter["run_id"] == run_id
    assert tasks(world) == []

    replayed = world.uc.replay(ADMIN, letter["id"])
    assert replayed["run"]["status"] == "done" and len(tasks(world)) == 1
    with pytest.raises(Exception, match="重放过"):
        world.uc.replay(ADMIN, letter["id"])
    world.engine.handle_event(event)  # the event again: the run is logged, nothing is done twice
    assert len(tasks(world)) == 1


def test_an_automation_that_retriggers_itself_is_cut_at_the_depth_limit(world: World) -> None:
    world.uc.create(
        ADMIN,
        {
            "name": "自我触发",
            "form": "customer",
            "trigger": {"type": "record_saved"},
            "actions": [{"type": "update_record", "target": "self", "values": {"customer_name": "{客户名称}+"}}],
        },
    )
    world.records.add(TENANT, "customer", {"customer_name": "环"})
    world.pump()

    [record] = world.records.records.values()
    assert record["data"]["customer_name"] == "环+++++"  # depth 0..4 each appended once
    runs, _ = world.uc.runs(ADMIN, record_id=record["id"], size=20)
    statuses = sorted(r["status"] for r in runs)
    assert statuses == ["cut", "done", "done", "done", "done", "done"]
    [cut] = [r for r in runs if r["status"] == "cut"]
    assert cut["depth"] == 5 and "depth 5" in cut["message"]


NO_FOLLOW_UP = {
    "name": "分配后 24 小时无跟进",
    "form": "customer",
    "trigger": {
        "type": "inactivity",
        "since": "owner_assigned",
        "after": "24h",
        "related_form": "follow_up",
        "related_field": "customer",
    },
    "actions": [
        {
            "type": "notify",
            "recipients": [{"type": "owner"}, {"type": "owner_manager"}],
            "channels": ["in_app", "email", "wecom"],
            "title": "{客户名称} 无跟进",
        }
    ],
}


def test_inactivity_fires_once_across_two_workers_and_a_related_record_cancels_it(world: World) -> None:
    automation = world.uc.create(ADMIN, NO_FOLLOW_UP)
    quiet = world.records.add(TENANT, "customer", {"customer_name": "沉默客户"}, owner_id=SALES[0])
    busy = world.records.add(TENANT, "customer", {"customer_name": "活跃客户"}, owner_id=SALES[1])
    world.pump()
    follow = world.records.add(TENANT, "follow_up", {"customer": busy["data"]["record_id"], "summary": "电话"})
    world.engine.handle_event(follow)
    assert world.store.pending_timers(automation["id"]) == 1

    world.clock_now += timedelta(hours=25)
    engines = [world.new_engine(worker="w1"), world.new_engine(worker="w2")]
    barrier = threading.Barrier(2)

    def sweep(engine: Engine) -> int:
        barrier.wait()
        return engine.sweep()

    with ThreadPoolExecutor(2) as pool:
        fired = sum(pool.map(sweep, engines))
    assert fired == 1
    notes, _, unread = world.uc.notifications(Principal(tenant_id=TENANT, user_id=SALES[0]))
    assert unread == 1 and notes[0]["title"] == "沉默客户 无跟进"
    boss, _, _ = world.uc.notifications(Principal(tenant_id=TENANT, user_id="u-boss"))
    assert [n["record_id"] for n in boss] == [quiet["data"]["record_id"]]
    [run] = [r for r in world.uc.runs(ADMIN, automation_id=automation["id"])[0] if r["status"] == "done"]
    deliveries = {d["channel"]: d["status"] for d in run["actions"][0]["result"]["deliveries"]}
    assert deliveries == {"in_app": "sent", "email": "not_configured", "wecom": "not_configured"}
    assert world.engine.sweep() == 0  # fired once, not again


@pytest.mark.parametrize("push", [False, True], ids=["condition-in-python", "condition-in-the-query"])
def test_a_date_timer_follows_its_field_and_the_condition_filters_what_fires(world: World, push: bool) -> None:
    world.engine.settings.push_conditions = push
    automation = world.uc.create(
        ADMIN,
        {
            "name": "回访前 1 小时",
            "form": "follow_up",
            "trigger": {"type": "date_relative", "field": "下次回访时间", "offset": "-1h"},
            "condition": {"field": "summary", "op": "not_empty"},
            "actions": [{"type": "notify", "recipients": [{"type": "owner"}], "title": "回访 {下次回访时间:time}"}],
        },
    )
    visit = (world.clock_now + timedelta(hours=3)).isoformat()
    kept = world.records.add(TENANT, "follow_up", {"summary": "带资料", "next_visit_at": visit}, owner_id=SALES[0])
    empty = world.records.add(TENANT, "follow_up", {"next_visit_at": visit}, owner_id=SALES[1])
    moved = world.records.add(TENANT, "follow_up", {"summary": "改期", "next_visit_at": visit}, owner_id=SALES[2])
    world.pump()
    record = world.records.records[moved["data"]["record_id"]]
    later = (world.clock_now + timedelta(days=2)).isoformat()
    world.records.update(Principal(tenant_id=TENANT, user_id=SALES[2]), record["id"], {"next_visit_at": later}, 1)
    world.pump()

    world.clock_now += timedelta(hours=2, minutes=1)
    # in the query (MongoDB): the empty one is left out by the store; in Python: its run finds the condition false
    assert world.engine.sweep() == (1 if push else 2)
    notes, _, _ = world.uc.notifications(Principal(tenant_id=TENANT, user_id=SALES[0]))
    assert [n["record_id"] for n in notes] == [kept["data"]["record_id"]]
    assert world.uc.notifications(Principal(tenant_id=TENANT, user_id=SALES[1]))[0] == []
    skipped = world.store.timers.find_one({"_id": record_timer_id(automation["id"], empty["data"]["record_id"])})
    assert skipped is not None and skipped["state"] == ("skipped" if push else "fired")
    pending = world.store.timers.find_one({"_id": record_timer_id(automation["id"], record["id"])})
    assert pending is not None and pending["state"] == "pending"
    assert pending["due_at"].replace(tzinfo=UTC) > world.clock_now + timedelta(days=1)


# ---------------------------------------------------------------- the public pool

POOL = {
    "name": "公海池",
    "form": "customer",
    "members": {"departments": ["d-team1"]},
    "admins": ["u-boss"],
    "max_owned_per_user": 200,
    "cooldown_days": 7,
    "recycle": {
        "after_days": 30,
        "days_by": {"field": "客户分级", "days": {"A": 60}},
        "warn_days": 3,
        "activity": [{"form": "follow_up", "field": "customer"}],
        "exempt": [
            {"form": "opportunity", "field": "customer", "condition": {"field": "stage", "op": "eq", "value": "won"}}
        ],
    },
}


def test_a_customer_without_follow_up_is_warned_then_recycled_once_and_activity_or_a_won_deal_keeps_it(
    world: World,
) -> None:
    from workflow_service.domain.pool_service import PoolUseCases

    pools = PoolUseCases(world.store, world.forms, clock=world.clock)
    pool = pools.create(ADMIN, POOL)
    assert world.store.outbox.count_documents({"event.type": "pool.updated"}) == 1
    quiet = world.records.add(TENANT, "customer", {"customer_name": "沉默"}, owner_id=SALES[0])
    active = world.records.add(TENANT, "customer", {"customer_name": "活跃"}, owner_id=SALES[1])
    grade_a = world.records.add(TENANT, "customer", {"customer_name": "大客户", "level": "A"}, owner_id=SALES[2])
    won = world.records.add(TENANT, "customer", {"customer_name": "已成交"}, owner_id=SALES[3])
    world.pump()
    world.clock_now += timedelta(days=20)
    follow_up = world.records.add(TENANT, "follow_up", {"customer": active["data"]["record_id"]})
    follow_up["occurred_at"] = world.clock_now.isoformat()  # the fake stamps events with the wall clock
    world.engine.handle_event(follow_up)
    world.records.add(TENANT, "opportunity", {"customer": won["data"]["record_id"], "stage": "won"})
    world.records.events.clear()

    world.clock_now += timedelta(days=8)  # day 28: the warning of the quiet one (due day 27)
    assert world.engine.sweep() >= 1
    warned, _, _ = world.uc.notifications(Principal(tenant_id=TENANT, user_id=SALES[0]))
    assert [n["title"] for n in warned] == ["“沉默”3 天后将被收回“公海池”，请尽快跟进"]

    world.clock_now += timedelta(days=3)  # day 31
    engines = [world.new_engine(worker="w1"), world.new_engine(worker="w2")]
    barrier = threading.Barrier(2)

    def sweep(engine: Engine) -> int:
        barrier.wait()
        return engine.sweep()

    with ThreadPoolExecutor(2) as pool_threads:
        list(pool_threads.map(sweep, engines))
    records = world.records.records
    assert records[quiet["data"]["record_id"]]["pool_id"] == pool["id"]
    assert records[quiet["data"]["record_id"]]["owner_id"] is None
    assert [e["type"] for e in world.records.events] == ["record.owner_changed"]  # recycled once
    assert records[active["data"]["record_id"]]["owner_id"] == SALES[1]  # a follow-up on day 20 moved it to day 50
    assert records[grade_a["data"]["record_id"]]["owner_id"] == SALES[2]  # grade A: 60 days
    assert records[won["data"]["record_id"]]["owner_id"] == SALES[3]  # exempt: a won deal
    told, _, _ = world.uc.notifications(Principal(tenant_id=TENANT, user_id=SALES[0]))
    assert told[0]["title"] == "“沉默”30 天无跟进，已被收回“公海池”"


def test_a_manual_automation_runs_its_chosen_optional_actions_and_refuses_an_unknown_option(world: World) -> None:
    automation = world.uc.create(
        ADMIN,
        {
            "name": "转化",
            "form": "customer",
            "trigger": {"type": "manual"},
            "actions": [
                {"type": "create_record", "form": "task", "values": {"title": "跟进 {客户名称}", "customer": "{id}"}},
                {
                    "type": "create_record",
                    "form": "task",
                    "optional": "second",
                    "values": {"title": "二次 {steps.0.id}"},
                },
                {"type": "update_record", "target": "self", "values": {"level": "A"}},
            ],
        },
    )
    world.records.add(TENANT, "customer", {"customer_name": "华信"}, owner_id=SALES[0])
    [customer] = world.records.records.values()

    run = world.uc.run_manual(ADMIN, automation["id"], customer["id"], [])
    assert [a["outcome"] for a in run["actions"]] == ["ok", "skipped", "ok"]
    assert len(tasks(world)) == 1 and customer["data"]["level"] == "A"
    run = world.uc.run_manual(ADMIN, automation["id"], customer["id"], ["second"])
    titles = sorted(t["data"]["title"] for t in tasks(world))
    assert titles[0].startswith("二次 r") and run["status"] == "done"
    with pytest.raises(ValidationFailed):
        world.uc.run_manual(ADMIN, automation["id"], customer["id"], ["third"])
    with pytest.raises(NotFound):
        world.uc.run_manual(
            Principal(tenant_id="other", user_id="x", role="admin", roles=("admin",)),
            automation["id"],
            customer["id"],
            [],
        )


def test_a_handover_gives_a_leaving_users_records_and_tasks_to_a_colleague_in_one_resumable_job(world: World) -> None:
    from workflow_service.domain.handover import Handover

    handover = Handover(world.store, world.records, world.forms, world.store, clock=world.clock)
    world.engine.handover = handover
    leaving, taking = SALES[0], SALES[1]
    for i in range(250):
        world.records.add(TENANT, "customer", {"customer_name": f"客户{i}"}, owner_id=leaving)
    world.records.add(TENANT, "customer", {"customer_name": "别人的"}, owner_id=SALES[2])
    world.records.add(TENANT, "task", {"title": "回访", "assignee": leaving}, owner_id=SALES[2])
    world.records.events.clear()

    job = handover.start(ADMIN, leaving, taking, "")
    assert job["state"] == "pending"
    with pytest.raises(ValidationFailed):
        handover.start(ADMIN, leaving, "", "")
    assert world.engine.sweep() >= 1
    done = handover.get(ADMIN, job["id"])
    assert done["state"] == "done" and done["progress"]["records"] == 250 and done["progress"]["fields"] == 1
    owners = [r["owner_id"] for r in world.records.records.values() if r["form_id"] == "f-customer"]
    assert owners.count(taking) == 250 and owners.count(SALES[2]) == 1
    [task] = tasks(world)
    assert task["data"]["assignee"] == taking and task["owner_id"] == SALES[2]
    vias = {e["data"].get("via") for e in world.records.events}
    assert vias == {f"handover:{job['id']}"}
    with pytest.raises(NotFound):
        handover.get(Principal(tenant_id="other", user_id="x", role="admin", roles=("admin",)), job["id"])
