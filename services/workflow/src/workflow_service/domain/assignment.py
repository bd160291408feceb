"""Lead assignment (线索分配): whom an assign_owner action gives the record to.

* round_robin: the next of the candidates, by a pointer per action kept in the
  store and moved with one atomic increment, so that concurrent runs never take
  the same turn (1,000 new leads over 5 users: 200 each);
* load_balanced: the candidate owning the fewest records of a form (matching
  an optional "open" condition, e.g. 线索状态 not 已转化), asked of the record service;
* rule: the first rule whose condition the record meets names the candidates
  (所在地区 → 区域负责人, 客户来源 → a team), then round robin among them.

Candidates are explicit users, the members of a department, or the holders of
a role (both: members of the department holding the role), always only the
active ones, ordered by id so that every worker sees the same list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workflow_service.domain.conditions import parse_condition

if TYPE_CHECKING:
    from workflow_service.domain.actions import ActionContext


def candidates(ctx: ActionContext, pool: Mapping[str, Any]) -> list[str]:
    """Active user ids of a pool (`users`, `department`, `role`), ordered, each once."""
    ids: list[str] = []
    for user_id in pool.get("users") or []:
        user = ctx.directory.user(ctx.tenant_id, str(user_id))
        if user is not None and user.active:
            ids.append(user.user_id)
    department = str(pool.get("department") or "")
    role = str(pool.get("role") or "")
    if department or role:
        ids.extend(u.user_id for u in ctx.directory.members(ctx.tenant_id, department_id=department, role=role))
    return sorted(dict.fromkeys(ids))


def _pointer_id(ctx: ActionContext, suffix: str) -> str:
    return f"{ctx.tenant_id}:{ctx.automation.get('id')}:{ctx.key.rsplit(':', 1)[-1]}{suffix}"


def round_robin(ctx: ActionContext, users: list[str], suffix: str = "") -> str | None:
    """The next user of `users` by the action's pointer (atomic: no two runs share a turn)."""
    if not users:
        return None
    turn = ctx.store.next_pointer(_pointer_id(ctx, suffix))
    return users[turn % len(users)]


def least_loaded(ctx: ActionContext, users: list[str], action: Mapping[str, Any]) -> str | None:
    """The user owning the fewest matching records of the count form (ties: the first by id)."""
    if not users:
        return None
    form_id = str(action.get("count_form_id") or ctx.record.get("form_id") or "")
    open_condition = action.get("open_condition")
    best: tuple[int, str] | None = None
    for user_id in users:
        owned: dict[str, Any] = {"field": "owner_id", "op": "eq", "value": user_id}
        tree = {"and": [owned, open_condition]} if open_condition else owned
        count = ctx.records.count(ctx.principal, form_id, tree)
        if best is None or count < best[0]:
            best = (count, user_id)
    return best[1] if best else None


def choose(ctx: ActionContext, action: Mapping[str, Any]) -> str | None:
    """The user an assign_owner action picks for the context's record, or None when nobody is eligible."""
    strategy = action.get("strategy", "round_robin")
    if strategy == "rule":
        for index, rule in enumerate(action.get("rules") or []):
            condition = parse_condition(rule.get("when"), ctx.fields, locale=ctx.locale)
            if condition is None or condition.matches(ctx.record):
                return round_robin(ctx, candidates(ctx, rule), suffix=f":rule{index}")
        pool = candidates(ctx, action)
        return round_robin(ctx, pool, suffix=":default") if pool else None
    pool = candidates(ctx, action)
    if strategy == "load_balanced":
        return least_loaded(ctx, pool, action)
    return round_robin(ctx, pool)
