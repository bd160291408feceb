"""The operation log (操作日志): an append-only, hash-chained record of who did what in a tenant.

Each entry (collection `audit_log` in `crm_gateway`):

    {_id, tenant_id, seq, at, actor_id, actor_name, action, object_type, object_id,
     summary, details, address, user_agent, request_id, prev_hash, hash}

`seq` counts 1, 2, 3, ... per tenant; `prev_hash` is the `hash` of entry
`seq - 1` (64 zeros for the first); `hash` is the SHA-256 of the canonical JSON
of the entry without `hash` (keys sorted, no spaces, UTF-8, `at` as
`YYYY-MM-DDTHH:MM:SS.mmmZ`, `details` as its own canonical JSON text), so it
covers `prev_hash` and therefore the whole chain before it. Changing, removing
or re-ordering a stored entry breaks the chain from that entry on; `verify`
names the first broken `seq`. (Someone able to rewrite the whole collection
can forge a new chain; anchoring the head hash outside the database is the
defence against that and is not part of this module.)

Appending from many gunicorn workers at once: the unique index
`(tenant_id, seq)` is the lock. An appender reads the tenant's head document
(`audit_head`: {seq, hash, at}), builds entry `seq + 1` chained to it and
inserts it; when another worker took that `seq` first the insert fails with a
duplicate key, the appender moves its head to the newest stored entry and tries
again. After a successful insert the head is advanced (conditionally, so it
never moves back). A worker dying between the insert and the head update loses
nothing: the head is only a hint, the next appender walks past it. `at` never
decreases along the chain (max of the clock and the previous entry's `at`), so
a time range maps to a range of `seq`.

No API edits or deletes an entry: there are no such routes and nothing here
updates `audit_log`.

Query paths and the index each uses (created by GatewayStore.ensure_indexes;
SecantusDB uses an index only when one index covers every predicate field;
every read below is bounded by a `seq` range):

    {tenant_id, seq}                               tenant_seq (unique)
    {tenant_id, actor_id, seq}                     tenant_actor_seq
    {tenant_id, action, seq}                       tenant_action_seq
    {tenant_id, object_type, seq}                  tenant_type_seq
    {tenant_id, object_type, object_id, seq}       tenant_object_seq
    {tenant_id, object_id, seq}                    tenant_object_id_seq
    audit_head / audit_settings                    {_id = tenant_id}

What the routes use (request-bound; tenant, actor, address, user agent and
request id come from the request and its principal):

    @audited(action, object_type, id_arg=..., with_body=..., result_keys=..., on_self=...)
                        decorator: log after the view succeeded (changes of users,
                        departments, roles, apps/forms)
    @audit_login        the login view: auth.login / auth.login_failed (+ reason)
    @audit_import       a bulk create: record.import with the form and the rows
    @audit_record_view  GET /records/<id>: record.view for the tenant's sensitive forms
    log_event(action, object_type, object_id="", *, summary="", details=None, ...)
    log_import(form, count) / log_export(form, count, record_filter=...)

None of them fails the request: the operation already happened, so an append
that fails is logged (`audit_append_failed`) and the response goes out. Secrets
never reach an entry: members named like password, token, secret, TOTP/OTP,
credential or key are replaced by "[redacted]" at any depth.

Actions logged: auth.login, auth.login_failed, user.create|update|delete|
password_reset, department.create|update|move|delete, role.create|update|delete,
app.create, form.create|update|publish, template.install, record.import,
record.export, record.view, audit.export, audit.settings_update.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from crm_runtime.errors import DomainError
from crm_runtime.logging import get_logger

log = get_logger("crm.gateway.audit")

GENESIS = "0" * 64
REDACTED = "[redacted]"
SUMMARY_MAX = 500
USER_AGENT_MAX = 512
ADDRESS_MAX = 128
DETAILS_MAX = 16 * 1024
APPEND_ATTEMPTS = 100
PAGE_SIZE = 50
PAGE_SIZE_MAX = 200
EXPORT_MAX_ROWS = 100_000
SCAN_BUDGET = 50_000  # entries one page may examine before it answers with a cursor
SCAN_READS = 200  # store reads one page may make
WINDOW_MAX = 1_000_000  # seq span of one read
SETTINGS_TTL = 10.0  # seconds another worker may see an old sensitive-form list

_SECRET_KEY = re.compile(r"password|passwd|secret|token|totp|otp|credential|api[_-]?key|private[_-]?key", re.I)

# the searchable, pushed-down filter fields, most selective first: (query fields, index fields)
_PUSH_PLANS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("object_type", "object_id"), "tenant_object_seq"),
    (("object_id",), "tenant_object_id_seq"),
    (("actor_id",), "tenant_actor_seq"),
    (("action",), "tenant_action_seq"),
    (("object_type",), "tenant_type_seq"),
)
FILTER_FIELDS = ("actor_id", "action", "object_type", "object_id")

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- canonical form and hash


def _utc_ms(value: datetime) -> datetime:
    """`value` in UTC, truncated to the millisecond the store keeps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_at(value: datetime) -> str:
    """The canonical text of a timestamp: UTC with milliseconds, e.g. 2026-12-02T06:46:21.123Z."""
    value = _utc_ms(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def canonical_json(value: Any) -> str:
    """Keys sorted, no whitespace, UTF-8 text (non-JSON values as their str)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `entry` without `hash` (it includes `prev_hash`)."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    at = body.get("at")
    if isinstance(at, datetime):
        body["at"] = format_at(at)
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def redact(value: Any) -> Any:
    """`value` as plain JSON with every secret-looking member (password, token, TOTP, ...) replaced."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return format_at(value)
    return str(value)


def _shrink(value: Any, budget: int) -> Any:
    """`value` cut down to about `budget` bytes of JSON: long strings shortened, big lists and objects summarised."""
    size = len(canonical_json(value).encode("utf-8"))
    if size <= budget:
        return value
    if isinstance(value, str):
        return value[: max(16, budget // 4)] + "…"
    if isinstance(value, list):
        return {"truncated": True, "items": len(value), "bytes": size}
    if isinstance(value, dict) and value:
        share = max(256, budget // len(value))
        return {k: _shrink(v, share) for k, v in value.items()}
    return {"truncated": True, "bytes": size}


def details_text(details: Mapping[str, Any] | None) -> str:
    """The stored `details`: canonical JSON of the redacted object, at most 16 KiB (big members summarised)."""
    value = redact(dict(details or {}))
    text = canonical_json(value)
    if len(text.encode("utf-8")) > DETAILS_MAX:
        text = canonical_json(_shrink(value, DETAILS_MAX // 2))
    if len(text.encode("utf-8")) > DETAILS_MAX:
        text = canonical_json({"truncated": True, "bytes": len(text.encode("utf-8"))})
    return text


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class AuditQuery:
    """Search filters: exact matches, and `since <= at < until`."""

    actor_id: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def to_json(self) -> Doc:
        """The filters that are set (for logging an export)."""
        out: Doc = {k: getattr(self, k) for k in FILTER_FIELDS if getattr(self, k)}
        if self.since is not None:
            out["from"] = format_at(self.since)
        if self.until is not None:
            out["to"] = format_at(self.until)
        return out


@dataclass(frozen=True)
class Page:
    """Entries newest first; `next_cursor` (a seq: continue below it) or None at the end."""

    items: list[Doc]
    next_cursor: int | None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking a tenant's chain."""

    tenant_id: str
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str = ""

    def to_json(self) -> Doc:
        """The API body."""
        return {
            "tenant_id": self.tenant_id,
            "ok": self.ok,
            "entries": self.entries,
            "first_broken_seq": self.first_broken_seq,
            "reason": self.reason or None,
        }


@dataclass(frozen=True)
class AuditSettings:
    """A tenant's audit settings: the forms whose record reads are logged."""

    sensitive_forms: tuple[str, ...] = ()
    sensitive_form_ids: tuple[str, ...] = ()
    updated_at: datetime | None = None
    updated_by: str = ""

    def to_json(self) -> Doc:
        """The API body."""
        return {
            "sensitive_forms": list(self.sensitive_forms),
            "updated_at": format_at(self.updated_at) if self.updated_at else None,
            "updated_by": self.updated_by or None,
        }


def public_entry(doc: Mapping[str, Any]) -> Doc:
    """The API form of an entry (`details` parsed back into an object)."""
    try:
        details = json.loads(doc.get("details") or "{}")
    except ValueError:
        details = {"unparsable": doc.get("details")}
    at = doc.get("at")
    return {
        "id": doc.get("_id"),
        "seq": doc.get("seq"),
        "at": format_at(at) if isinstance(at, datetime) else at,
        "actor_id": doc.get("actor_id", ""),
        "actor_name": doc.get("actor_name", ""),
        "action": doc.get("action", ""),
        "object_type": doc.get("object_type", ""),
        "object_id": doc.get("object_id", ""),
        "summary": doc.get("summary", ""),
        "details": details,
        "address": doc.get("address", ""),
        "user_agent": doc.get("user_agent", ""),
        "request_id": doc.get("request_id", ""),
        "prev_hash": doc.get("prev_hash", ""),
        "hash": doc.get("hash", ""),
    }


@dataclass
class _Head:
    seq: int = 0
    hash: str = GENESIS
    at: datetime | None = None


# ----------------------------------------------------------------------------- the log


class AuditLog:
    """Append, search, export and verify the operation log of each tenant."""

    def __init__(
        self,
        entries: Collection[Any],
        heads: Collection[Any],
        settings: Collection[Any],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        settings_ttl: float = SETTINGS_TTL,
    ) -> None:
        self._entries = entries
        self._heads = heads
        self._settings = settings
        self._clock = clock
        self._settings_ttl = settings_ttl
        self._cache: dict[str, tuple[float, AuditSettings]] = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ append

    def append(
        self,
        tenant_id: str,
        action: str,
        *,
        actor_id: str,
        actor_name: str = "",
        object_type: str = "",
        object_id: str = "",
        summary: str = "",
        details: Mapping[str, Any] | None = None,
        address: str = "",
        user_agent: str = "",
        request_id: str = "",
    ) -> Doc:
        """Chain one entry to the tenant's log and return it as stored."""
        if not tenant_id or not action:
            raise ValueError("an audit entry needs a tenant and an action")
        base: Doc = {
            "tenant_id": tenant_id,
            "actor_id": str(actor_id or ""),
            "actor_name": str(actor_name or ""),
            "action": action,
            "object_type": str(object_type or ""),
            "object_id": str(object_id or ""),
            "summary": str(summary or "")[:SUMMARY_MAX],
            "details": details_text(details),
            "address": str(address or "")[:ADDRESS_MAX],
            "user_agent": str(user_agent or "")[:USER_AGENT_MAX],
            "request_id": str(request_id or "")[:128],
        }
        head = self._read_head(tenant_id)
        for _ in range(APPEND_ATTEMPTS):
            now = _utc_ms(self._clock())
            at = max(now, head.at) if head.at is not None else now
            entry: Doc = {"_id": uuid.uuid4().hex, "seq": head.seq + 1, "at": at, **base, "prev_hash": head.hash}
            entry["hash"] = entry_hash(entry)
            try:
                self._entries.insert_one(entry)
            except DuplicateKeyError:
                head = self._newest_after(tenant_id, head)
                continue
            self._advance_head(tenant_id, entry)
            return entry
        raise RuntimeError(f"audit append for tenant {tenant_id} lost {APPEND_ATTEMPTS} races in a row")

    def _read_head(self, tenant_id: str) -> _Head:
        doc = self._heads.find_one({"_id": tenant_id})
        if doc is None:
            return _Head()
        at = doc.get("at")
        return _Head(int(doc.get("seq") or 0), str(doc.get("hash") or GENESIS), _utc_ms(at) if at else None)

    def _newest_after(self, tenant_id: str, head: _Head) -> _Head:
        """The newest stored entry past `head`, or `head` when there is none."""
        span = 64
        newest: Mapping[str, Any] | None = None
        lo = head.seq + 1
        while True:
            docs = list(
                self._entries.find(
                    {"tenant_id": tenant_id, "seq": {"$gte": lo, "$lt": lo + span}},
                    {"seq": 1, "hash": 1, "at": 1},
                )
            )
            if not docs:
                break
            newest = max(docs, key=lambda d: int(d["seq"]))
            if len(docs) < span:
                break
            lo, span = int(newest["seq"]) + 1, min(span * 4, 65536)
        if newest is None:
            return head
        return _Head(int(newest["seq"]), str(newest["hash"]), _utc_ms(newest["at"]))

    def _advance_head(self, tenant_id: str, entry: Mapping[str, Any]) -> None:
        update = {"$set": {"seq": entry["seq"], "hash": entry["hash"], "at": entry["at"]}}
        try:
            self._heads.update_one({"_id": tenant_id, "seq": {"$lt": entry["seq"]}}, update, upsert=True)
        except DuplicateKeyError:
            pass  # the head is already past this entry

    # ------------------------------------------------------------------ search

    def head_seq(self, tenant_id: str) -> int:
        """The newest seq the head knows (0 for an empty log)."""
        return self._read_head(tenant_id).seq

    def search(
        self, tenant_id: str, query: AuditQuery, *, cursor: int | None = None, page_size: int = PAGE_SIZE
    ) -> Page:
        """One page newest first; `cursor` continues below that seq."""
        page_size = max(1, min(int(page_size), PAGE_SIZE_MAX))
        lo, hi = self._seq_bounds(tenant_id, query)
        if cursor is not None:
            hi = min(hi, cursor)
        items, resume = self._scan(tenant_id, query, lo, hi, page_size + 1)
        if len(items) > page_size:
            items = items[:page_size]
            resume = int(items[-1]["seq"])
        return Page(items, resume)

    def iter_entries(self, tenant_id: str, query: AuditQuery, *, limit: int = EXPORT_MAX_ROWS) -> Iterator[Doc]:
        """Every matching entry newest first, at most `limit`, read page by page."""
        lo, hi = self._seq_bounds(tenant_id, query)
        produced = 0
        while hi > lo and produced < limit:
            items, resume = self._scan(tenant_id, query, lo, hi, min(1000, limit - produced))
            yield from items
            produced += len(items)
            if resume is None:
                return
            hi = resume

    def _seq_bounds(self, tenant_id: str, query: AuditQuery) -> tuple[int, int]:
        """[lo, hi): a superset of the seqs the time range can match (at never decreases along seq)."""
        # past the head: it lags behind a writer that died between its insert and the head update
        top = self._newest_after(tenant_id, self._read_head(tenant_id)).seq
        lo, hi = 1, top + 1
        if query.since is not None:
            lo = self._first_seq_at_or_after(tenant_id, _utc_ms(query.since), 1, top + 1)
        if query.until is not None:
            hi = self._first_seq_at_or_after(tenant_id, _utc_ms(query.until), lo, top + 1)
        return lo, max(lo, hi)

    def _first_seq_at_or_after(self, tenant_id: str, moment: datetime, lo: int, hi: int) -> int:
        """The smallest seq in [lo, hi) whose entry has at >= moment (hi when none); point reads only."""
        while lo < hi:
            mid = (lo + hi) // 2
            doc = self._entries.find_one({"tenant_id": tenant_id, "seq": mid}, {"at": 1})
            if doc is None:
                # a missing entry (tampering): treat it as late, which only widens the range
                hi = mid
            elif _utc_ms(doc["at"]) >= moment:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _scan(self, tenant_id: str, query: AuditQuery, lo: int, hi: int, want: int) -> tuple[list[Doc], int | None]:
        """Up to `want` matches in [lo, hi) newest first, and where to resume (None: nothing left)."""
        pushed: Doc = {"tenant_id": tenant_id}
        for fields, _index in _PUSH_PLANS:
            if all(getattr(query, f) for f in fields):
                pushed.update({f: getattr(query, f) for f in fields})
                break
        rest = {f: getattr(query, f) for f in FILTER_FIELDS if getattr(query, f) and f not in pushed}
        since = _utc_ms(query.since) if query.since is not None else None
        until = _utc_ms(query.until) if query.until is not None else None
        window = want if len(pushed) == 1 and not rest else max(want * 4, 256)
        out: list[Doc] = []
        examined = reads = 0
        while hi > lo:
            start = max(lo, hi - window)
            docs = list(self._entries.find({**pushed, "seq": {"$gte": start, "$lt": hi}}))
            reads += 1
            examined += len(docs)
            docs.sort(key=lambda d: int(d["seq"]), reverse=True)
            for doc in docs:
                if any(doc.get(f) != v for f, v in rest.items()):
                    continue
                at = _utc_ms(doc["at"])
                if (since is not None and at < since) or (until is not None and at >= until):
                    continue
                out.append(doc)
                if len(out) >= want:
                    return out, int(doc["seq"])
            hi = start
            if examined >= SCAN_BUDGET or reads >= SCAN_READS:
                return out, (hi if hi > lo else None)
            if len(docs) < 1000:  # a sparse window: look further at once
                window = min(window * 2, WINDOW_MAX)
        return out, None

    # ------------------------------------------------------------------ verify

    def verify(self, tenant_id: str, *, batch: int = 1000) -> VerifyResult:
        """Walk the chain from seq 1: every seq present, linked to the one before, hash intact."""
        prev, expected, count = GENESIS, 1, 0
        head = self._read_head(tenant_id)
        while True:
            docs = list(
                self._entries.find({"tenant_id": tenant_id, "seq": {"$gte": expected, "$lt": expected + batch}})
            )
            if not docs:
                break
            docs.sort(key=lambda d: int(d["seq"]))
            for doc in docs:
                seq = int(doc["seq"])
                if seq != expected:
                    return VerifyResult(tenant_id, False, count, expected, "missing")
                if doc.get("prev_hash") != prev:
                    return VerifyResult(tenant_id, False, count, seq, "prev_hash")
                if entry_hash(doc) != doc.get("hash"):
                    return VerifyResult(tenant_id, False, count, seq, "hash")
                prev, expected, count = str(doc["hash"]), seq + 1, count + 1
            if len(docs) < batch:
                # the rest of the log may start after a gap
                later = self._entries.find_one({"tenant_id": tenant_id, "seq": {"$gte": expected}}, {"seq": 1})
                if later is None:
                    break
                return VerifyResult(tenant_id, False, count, expected, "missing")
        if head.seq >= expected:
            # the head saw entries that are gone (the newest ones were deleted)
            return VerifyResult(tenant_id, False, count, expected, "missing")
        return VerifyResult(tenant_id, True, count)

    def tenants(self) -> list[str]:
        """Every tenant that has a log."""
        return sorted(str(d["_id"]) for d in self._heads.find({}, {"_id": 1}))

    # ------------------------------------------------------------------ settings

    def settings(self, tenant_id: str) -> AuditSettings:
        """The tenant's settings, read from the store."""
        doc = self._settings.find_one({"_id": tenant_id}) or {}
        return AuditSettings(
            sensitive_forms=tuple(doc.get("sensitive_forms") or ()),
            sensitive_form_ids=tuple(doc.get("sensitive_form_ids") or ()),
            updated_at=doc.get("updated_at"),
            updated_by=str(doc.get("updated_by") or ""),
        )

    def set_sensitive_forms(self, tenant_id: str, forms: Sequence[tuple[str, str]], updated_by: str) -> AuditSettings:
        """Replace the sensitive forms with these (key, id) pairs."""
        keys = list(dict.fromkeys(k for k, _ in forms))
        ids = list(dict.fromkeys(i for _, i in forms))
        self._settings.update_one(
            {"_id": tenant_id},
            {
                "$set": {
                    "sensitive_forms": keys,
                    "sensitive_form_ids": ids,
                    "updated_at": _utc_ms(self._clock()),
                    "updated_by": updated_by,
                }
            },
            upsert=True,
        )
        with self._cache_lock:
            self._cache.pop(tenant_id, None)
        return self.settings(tenant_id)

    def is_sensitive(self, tenant_id: str, form_id: str) -> bool:
        """True when reads of records of `form_id` (id or key) are logged (cached for a few seconds)."""
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(tenant_id)
        if hit is None or hit[0] <= now:
            hit = (now + self._settings_ttl, self.settings(tenant_id))
            with self._cache_lock:
                self._cache[tenant_id] = hit
        current = hit[1]
        return bool(form_id) and (form_id in current.sensitive_form_ids or form_id in current.sensitive_forms)


def verify_command(log_: AuditLog, tenant: str | None, out: TextIO) -> int:
    """`python -m gateway audit verify`: one line per tenant; 0 when every chain is intact, else 1."""
    tenants = [tenant] if tenant else log_.tenants()
    status = 0
    for tenant_id in tenants:
        result = log_.verify(tenant_id)
        if result.ok:
            print(f"OK tenant={tenant_id} entries={result.entries}", file=out)
        else:
            status = 1
            print(
                f"BROKEN tenant={tenant_id} first_broken_seq={result.first_broken_seq} "
                f"reason={result.reason} verified_entries={result.entries}",
                file=out,
            )
    if not tenants:
        print("OK no audit log yet", file=out)
    return status


# ----------------------------------------------------------------------------- request-bound hooks


@dataclass(frozen=True)
class Origin:
    """Where a request came from."""

    address: str = ""
    user_agent: str = ""
    request_id: str = ""


def client_address(trusted_proxies: int = 0) -> str:
    """The client address: the socket peer, or with N trusted proxies the N-th X-Forwarded-For entry from the right."""
    from flask import request

    if trusted_proxies > 0:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
        if forwarded:
            return forwarded[-trusted_proxies] if len(forwarded) >= trusted_proxies else forwarded[0]
    return request.remote_addr or ""


def request_origin() -> Origin:
    """The origin of the request being served (empty outside a request)."""
    from flask import g, has_request_context, request

    if not has_request_context():
        return Origin()
    from gateway.context import gateway

    proxies = int(getattr(gateway().settings, "trusted_proxies", 0) or 0)
    return Origin(
        address=client_address(proxies),
        user_agent=request.headers.get("User-Agent", ""),
        request_id=g.get("request_id", "") or request.headers.get("X-Request-Id", ""),
    )


@dataclass(frozen=True)
class _Actor:
    tenant_id: str
    actor_id: str
    actor_name: str
    extra: Mapping[str, Any] = field(default_factory=dict)


def _request_actor() -> _Actor | None:
    from gateway.auth import current_principal

    try:
        p = current_principal()
    except Exception:  # noqa: BLE001 - no signed-in user in this request
        return None
    extra = {"on_behalf": p.on_behalf} if getattr(p, "on_behalf", "") else {}
    return _Actor(p.tenant_id, p.user_id, p.user_name, extra)


def log_event(
    action: str,
    object_type: str,
    object_id: str = "",
    *,
    summary: str = "",
    details: Mapping[str, Any] | None = None,
    tenant_id: str | None = None,
    actor_id: str | None = None,
    actor_name: str | None = None,
) -> Doc | None:
    """Log one operation of the request's signed-in user (tenant and actor default to the principal).

    Never raises: a failed append is logged (`audit_append_failed`) and None is returned.
    """
    from gateway.context import gateway

    try:
        actor = _request_actor()
        tenant = tenant_id or (actor.tenant_id if actor else "")
        if not tenant:
            raise ValueError("no tenant for the audit entry")
        origin = request_origin()
        merged = dict(details or {})
        if actor is not None and actor.extra and actor_id is None:
            merged.setdefault("actor", dict(actor.extra))
        return gateway().audit.append(
            tenant,
            action,
            actor_id=actor_id if actor_id is not None else (actor.actor_id if actor else ""),
            actor_name=actor_name if actor_name is not None else (actor.actor_name if actor else ""),
            object_type=object_type,
            object_id=object_id,
            summary=summary,
            details=merged,
            address=origin.address,
            user_agent=origin.user_agent,
            request_id=origin.request_id,
        )
    except Exception as exc:  # noqa: BLE001 - the operation itself already happened
        log.error("audit_append_failed", action=action, object_type=object_type, object_id=object_id, error=str(exc))
        return None


def log_login(
    tenant_id: str, username: str, *, user: Mapping[str, Any] | None, ok: bool, reason: str = ""
) -> Doc | None:
    """Log a sign-in attempt: `auth.login`, or `auth.login_failed` with a reason
    (invalid_credentials, account_inactive, locked, ...). The actor of a failure is
    the name tried (actor_id empty); `object_id` is the account when it exists.
    Attempts naming a tenant that does not exist are not logged (no log per made-up tenant).
    """
    from gateway.context import gateway

    try:
        if gateway().store.tenants.find_one({"_id": tenant_id}, {"_id": 1}) is None:
            return None
    except Exception as exc:  # noqa: BLE001 - never fail a login for the log's sake
        log.error("audit_append_failed", action="auth.login", error=str(exc))
        return None
    user_id = str(user["_id"]) if user else ""
    name = str(user.get("name") or user.get("username") or username) if user else username
    return log_event(
        "auth.login" if ok else "auth.login_failed",
        "user",
        user_id,
        summary=username,
        details={"username": username, **({"reason": reason} if reason else {})},
        tenant_id=tenant_id,
        actor_id=user_id if ok else "",
        actor_name=name if ok else username,
    )


def log_import(form: str, count: int, *, details: Mapping[str, Any] | None = None) -> Doc | None:
    """Log an import (bulk create) of `count` rows into `form` (id or key) by the signed-in user."""
    return log_event("record.import", "form", form, summary=f"{count}", details={"rows": count, **(details or {})})


def log_export(
    form: str, count: int, *, record_filter: Any = None, details: Mapping[str, Any] | None = None
) -> Doc | None:
    """Log an export of `count` rows of `form` (id or key), with the filter used, by the signed-in user.

    For the record export endpoint (not built yet): call it once the rows are
    known, e.g. in the `finally` of the streaming generator with the rows written.
    """
    body: Doc = {"rows": count, **(details or {})}
    if record_filter is not None:
        body["filter"] = record_filter
    return log_event("record.export", "form", form, summary=f"{count}", details=body)


def log_record_view(record: Mapping[str, Any]) -> Doc | None:
    """Log a read of `record` (the API record) when its form is a sensitive form of the tenant."""
    from gateway.context import gateway

    try:
        actor = _request_actor()
        form_id = str(record.get("form_id") or "")
        if actor is None or not gateway().audit.is_sensitive(actor.tenant_id, form_id):
            return None
    except Exception as exc:  # noqa: BLE001 - a read never fails for the log's sake
        log.error("audit_append_failed", action="record.view", error=str(exc))
        return None
    return log_event("record.view", "record", str(record.get("id") or ""), details={"form_id": form_id})


# ----------------------------------------------------------------------------- route decorators

_SUMMARY_KEYS = ("name", "username", "key", "title")


def _response_json(resp: Any) -> Any:
    get_json = getattr(resp, "get_json", None)
    if get_json is None or getattr(resp, "is_streamed", False):
        return None
    try:
        return get_json(silent=True)
    except Exception:  # noqa: BLE001 - an unreadable body only leaves fields empty
        return None


def _summary_of(*docs: Any) -> str:
    # the object itself, or the object a result wraps ({"app": {...}, "created": true})
    nested = [d.get(k) for d in docs if isinstance(d, Mapping) for k in ("app", "form", "record")]
    for doc in (*docs, *nested):
        if isinstance(doc, Mapping):
            for key in _SUMMARY_KEYS:
                value = doc.get(key)
                if isinstance(value, Mapping):  # a localised name {"zh-CN": ..., "en": ...}
                    value = value.get("zh-CN") or next(iter(value.values()), "")
                if value:
                    return str(value)
    return ""


def audited(
    action: str,
    object_type: str,
    *,
    id_arg: str | None = None,
    with_body: bool = True,
    result_keys: Sequence[str] = (),
    on_self: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route decorator (put it directly above `def`): log `action` after the view succeeded.

    object_id: the route argument `id_arg`, else (`on_self`) the signed-in user, else the
    `id` (or `key`) of the JSON response;
    summary: the name / username / key of the response or body; details: the request body
    as `changes` (redacted; `with_body=False` leaves it out), `result_keys` copied from the
    response (e.g. `count`), and the other route arguments. Failed views log nothing.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            resp = view(*args, **kwargs)
            status = int(getattr(resp, "status_code", 200) or 200)
            if status < 400:
                try:
                    out = _response_json(resp)
                    body = kwargs.get("body")
                    object_id = str(kwargs.get(id_arg, "")) if id_arg else ""
                    if not object_id and on_self:
                        actor = _request_actor()
                        object_id = actor.actor_id if actor else ""
                    if not object_id and isinstance(out, Mapping):
                        object_id = str(out.get("id") or out.get("key") or "")
                    details: Doc = {
                        k: v for k, v in kwargs.items() if k not in ("body", "query", id_arg) and isinstance(v, str)
                    }
                    if with_body and isinstance(body, Mapping):
                        details["changes"] = dict(body)
                    if isinstance(out, Mapping):
                        details.update({k: out[k] for k in result_keys if k in out})
                    log_event(action, object_type, object_id, summary=_summary_of(out, body), details=details)
                except Exception as exc:  # noqa: BLE001 - the change itself succeeded
                    log.error("audit_append_failed", action=action, error=str(exc))
            return resp

        return inner

    return wrap


def audit_login(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator of the login view: logs `auth.login`, or `auth.login_failed` with the error code as reason."""

    @functools.wraps(view)
    def inner(*args: Any, **kwargs: Any) -> Any:
        from gateway.context import gateway

        body = kwargs.get("body") or {}
        tenant_id, username = str(body.get("tenant") or ""), str(body.get("username") or "")

        def account() -> Mapping[str, Any] | None:
            try:
                return gateway().store.users.find_one(  # type: ignore[no-any-return]
                    {"tenant_id": tenant_id, "username": username}, {"_id": 1, "name": 1, "username": 1}
                )
            except Exception:  # noqa: BLE001 - logged without the account id
                return None

        try:
            resp = view(*args, **kwargs)
        except DomainError as exc:  # invalid_credentials, account_inactive, totp_required ...
            log_login(tenant_id, username, user=account(), ok=False, reason=exc.code)
            raise
        except Exception as exc:
            extra = getattr(exc, "extra_data", None) or {}
            reason = str(extra.get("code") or getattr(exc, "status_code", "") or type(exc).__name__)
            log_login(tenant_id, username, user=account(), ok=False, reason=reason)
            raise
        if int(getattr(resp, "status_code", 200) or 200) < 400:
            log_login(tenant_id, username, user=account(), ok=True)
        return resp

    return inner


def audit_import(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator of a bulk create (`form` route argument, `count` in the response): logs `record.import`."""

    @functools.wraps(view)
    def inner(*args: Any, **kwargs: Any) -> Any:
        resp = view(*args, **kwargs)
        out = _response_json(resp) if int(getattr(resp, "status_code", 200) or 200) < 400 else None
        if isinstance(out, Mapping):
            log_import(str(kwargs.get("form") or ""), int(out.get("count") or 0))
        return resp

    return inner


def audit_record_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator of GET /records/<id>: logs `record.view` when the record's form is sensitive."""

    @functools.wraps(view)
    def inner(*args: Any, **kwargs: Any) -> Any:
        resp = view(*args, **kwargs)
        out = _response_json(resp) if int(getattr(resp, "status_code", 200) or 200) < 400 else None
        if isinstance(out, Mapping):
            log_record_view(out)
        return resp

    return inner
