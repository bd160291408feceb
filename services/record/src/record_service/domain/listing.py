"""ListRecords: one page of a form's records the caller may see, filtered, sorted, counted as asked.

The query language (filter trees, sorts, cursors, keywords) is domain/query.py;
how the store is asked for a page and a count is the RecordQueries port's
(store/planner.py). This use case decides what the caller may ask: only
records they may see (their access is part of the query, so the page, the
count and a keyword search agree), no filter, sort or keyword on a field hidden
from them; and it renders the page for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import crm_schema
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import RecordCore
from record_service.domain.pool import PoolAccess, is_admin, is_member
from record_service.domain.query import COUNT_CAPPED, encode_cursor, normalise_text
from record_service.domain.rendering import Renderer
from record_service.domain.repository import ListPlan, RecordQueries

Doc = dict[str, Any]


@dataclass
class ListPage:
    """One page of ListRecords."""

    records: list[Doc]
    next_cursor: str
    total: int
    total_capped: bool
    plan: ListPlan


class Listing:
    """ListRecords."""

    def __init__(self, core: RecordCore, renderer: Renderer, queries: RecordQueries) -> None:
        self.core = core
        self.renderer = renderer
        self.queries = queries

    def list_records(
        self,
        principal: Principal,
        form_ref: str,
        *,
        tree: Any = None,
        sort: Any = None,
        cursor: str = "",
        page_size: int = 0,
        count_mode: str = COUNT_CAPPED,
        keyword: str = "",
        deleted: bool = False,
        pool_id: str = "",
        pool: Any = None,
    ) -> ListPage:
        """One page of records: planned and read by the query port, rendered, counted as asked.

        Only records the caller may see: `acl $in [tokens]` is a pushdown
        candidate and the exact rule a residual condition, so the page, the
        count and a keyword search agree. Hidden fields cannot be filtered,
        sorted or keyword-searched on.
        """
        core = self.core
        form = core.form(principal, form_ref)
        ctx = core.context(principal)
        fa = core.access(principal, form, ctx)
        scope: Any = None if fa.unrestricted else fa
        if pool_id:
            # a pool's records: its members' (and admins') view, whatever their own scope (domain/pool.py)
            found = pool.pool(principal, pool_id)
            if str(found.get("form_id")) != form.id or not (is_member(found, principal) or is_admin(found, principal)):
                raise rerr.record_not_found(f"pool:{pool_id}", principal.locale)
            scope = PoolAccess(pool_id)
        keyword_text: Callable[[Mapping[str, Any]], str] | None = None
        if fa.hidden & set(form.by_key):
            shown = [f for f in form.fields if f["key"] not in fa.hidden]

            def keyword_text(doc: Mapping[str, Any]) -> str:
                return normalise_text(crm_schema.search_text(shown, dict(doc.get("data") or {})))

        plan = self.queries.plan(
            form,
            principal.tenant_id,
            ctx=ctx,
            access=scope,
            hidden=fa.hidden,
            keyword_text=keyword_text,
            tree=tree,
            sort=sort,
            keyword=keyword,
            cursor=cursor,
            page_size=page_size,
            deleted=deleted,
        )
        page, more = self.queries.page(form, plan)
        next_cursor = encode_cursor(plan.sort, page[-1]) if more and page else ""
        total, capped = self.queries.count(plan, count_mode)
        return ListPage(self.renderer.render(principal, form, page, ctx, fa), next_cursor, total, capped, plan)
