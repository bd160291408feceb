"""The principal (who calls, for which tenant, with which rights) and how it travels between services.

Service-to-service trust: a principal crosses a gRPC boundary only as a
short-lived *principal token* (JWT, HS256, audience `crm-internal`) in the
metadata key `x-crm-principal`, signed with the installation's internal secret
(`CRM_INTERNAL_SECRET`). The gateway signs one for the user of each request
(after checking the user's session); a service signs its own for system work
(`Principal.service(...)`, e.g. the workflow worker acting for an automation).
Every gRPC server verifies it (`PrincipalCodec.verify`) before any handler
runs; a call without a valid token is refused with UNAUTHENTICATED. A tenant,
user or role written into plain metadata is never believed. Only the locale
and the request id travel unsigned (they grant nothing).

The token carries the user's compiled access policy (crm_runtime.access), so a
service decides without reading roles: `principal.policy`.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import hashlib
import json
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from crm_runtime.access import FULL, Policy, Subject, builtin_role, compile_policy, user_variables

ROLES = ("admin", "manager", "sales")  # the built-in role keys

HEADER_TOKEN = "x-crm-principal"
_H_LOCALE = "x-locale"
_H_REQUEST = "x-request-id"
AUDIENCE = "crm-internal"
TOKEN_SECONDS = 120
MIN_SECRET = 32


@dataclass(frozen=True)
class Principal:
    """The caller of an RPC.

    `role` is the primary role key (display, and the `readable_roles` of
    encrypted fields); `roles` every role held; `policy` the compiled rights
    (None: the built-in policy of `role`, which is what tests and tools that
    build a principal by hand get). `kind` is "user" or "service"; a service
    principal names what it acts for in `on_behalf`.
    """

    tenant_id: str
    user_id: str = "system"
    role: str = "admin"
    department_id: str = ""
    scope_departments: tuple[str, ...] = field(default_factory=tuple)
    locale: str = "zh-CN"
    request_id: str = ""
    user_name: str = ""
    roles: tuple[str, ...] = field(default_factory=tuple)
    policy_override: Policy | None = None
    session_id: str = ""
    kind: str = "user"
    on_behalf: str = ""

    @classmethod
    def service(cls, tenant_id: str, service: str, on_behalf: str = "", *, locale: str = "zh-CN") -> Principal:
        """A service's own identity for system work in a tenant (full rights, audited as `service:<name>`)."""
        return cls(
            tenant_id=tenant_id,
            user_id=f"service:{service}",
            role="admin",
            roles=("admin",),
            user_name=service,
            policy_override=FULL,
            kind="service",
            on_behalf=on_behalf,
            locale=locale,
        )

    @property
    def policy(self) -> Policy:
        """The compiled access policy."""
        if self.policy_override is not None:
            return self.policy_override
        return _builtin_policy(self.roles or (self.role,), self.user_id, self.department_id)

    @property
    def is_admin(self) -> bool:
        """True for a tenant administrator (users, roles, forms, audit of the tenant)."""
        return self.policy.tenant_admin

    @property
    def subject(self) -> Subject:
        """Who asks, for scope decisions."""
        return Subject(self.user_id, self.department_id, self.scope_departments)

    def to_metadata(self, codec: PrincipalCodec | None = None) -> list[tuple[str, str]]:
        """gRPC metadata carrying this principal, signed by `codec` (default: the installation's)."""
        return (codec or default_codec()).metadata(self)

    def with_request(self, *, locale: str | None = None, request_id: str | None = None) -> Principal:
        """A copy with another locale / request id (unsigned, per call)."""
        return replace(
            self,
            locale=_norm_locale(locale) if locale is not None else self.locale,
            request_id=request_id if request_id is not None else self.request_id,
        )


@functools.lru_cache(maxsize=1024)
def _builtin_policy(keys: tuple[str, ...], user_id: str, department_id: str) -> Policy:
    defs = [builtin_role(k) for k in keys if k in ROLES] or [builtin_role("sales")]
    return compile_policy(defs, user_variables(user_id, department_id))


def _norm_locale(value: str) -> str:
    return "en" if value.lower().startswith("en") else "zh-CN"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PrincipalCodec:
    """Signs principals into tokens and verifies tokens back into principals.

    Verification results are cached by token (bounded LRU, never past the
    token's expiry), so a busy service pays the HMAC and the policy decoding
    once per token, not once per call.
    """

    def __init__(self, secret: str, *, issuer: str = "crm", ttl: int = TOKEN_SECONDS, cache_size: int = 4096) -> None:
        if not secret or len(secret) < MIN_SECRET:
            from crm_runtime.config import ConfigError

            raise ConfigError(f"CRM_INTERNAL_SECRET is required (at least {MIN_SECRET} characters)")
        self._secret = secret
        self._issuer = issuer
        self._ttl = ttl
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._signed: OrderedDict[str, tuple[float, str]] = OrderedDict()

    @classmethod
    def from_env(cls, issuer: str = "crm") -> PrincipalCodec:
        """The codec for CRM_INTERNAL_SECRET; a missing or short secret fails start-up."""
        import os

        return cls(os.environ.get("CRM_INTERNAL_SECRET", ""), issuer=issuer)

    # ------------------------------------------------------------------ signing

    def sign(self, principal: Principal, *, now: float | None = None) -> str:
        """A token for `principal`, valid for the codec's ttl (reused while it has over half its life left)."""
        import jwt

        now = time.time() if now is None else now
        policy_text = json.dumps(principal.policy.to_json(), separators=(",", ":"), ensure_ascii=False)
        body = {
            "tid": principal.tenant_id,
            "sub": principal.user_id,
            "r": principal.role,
            "rl": list(principal.roles),
            "dep": principal.department_id,
            "st": list(principal.scope_departments),
            "nm": principal.user_name,
            "sid": principal.session_id,
            "k": principal.kind,
            "obo": principal.on_behalf,
            "pol": _b64(zlib.compress(policy_text.encode("utf-8"))),
        }
        key = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        with self._lock:
            hit = self._signed.get(key)
            if hit is not None and hit[0] - now > self._ttl / 2:
                return hit[1]
        exp = int(now) + self._ttl
        token = jwt.encode(
            {**body, "iss": self._issuer, "aud": AUDIENCE, "iat": int(now), "exp": exp},
            self._secret,
            algorithm="HS256",
        )
        with self._lock:
            self._signed[key] = (exp, token)
            while len(self._signed) > self._cache_size:
                self._signed.popitem(last=False)
        return token

    def metadata(self, principal: Principal) -> list[tuple[str, str]]:
        """gRPC metadata carrying `principal`: the signed token, the locale and the request id."""
        md = [(HEADER_TOKEN, self.sign(principal)), (_H_LOCALE, principal.locale)]
        if principal.request_id:
            md.append((_H_REQUEST, principal.request_id))
        return md

    # ------------------------------------------------------------------ verifying

    def verify(self, token: str, *, now: float | None = None) -> Principal | None:
        """The principal of a valid token, else None (bad signature, expired, wrong audience, malformed)."""
        import jwt

        now = time.time() if now is None else now
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                if hit[0] > now:
                    self._cache.move_to_end(token)
                    return hit[1]
                del self._cache[token]
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "tid", "sub", "pol"]},
                leeway=5,
            )
            policy = Policy.from_json(json.loads(zlib.decompress(_unb64(str(claims["pol"]))).decode("utf-8")))
            principal = Principal(
                tenant_id=str(claims["tid"]),
                user_id=str(claims["sub"]),
                role=str(claims.get("r") or ""),
                roles=tuple(str(r) for r in claims.get("rl") or ()),
                department_id=str(claims.get("dep") or ""),
                scope_departments=tuple(str(d) for d in claims.get("st") or ()),
                user_name=str(claims.get("nm") or ""),
                session_id=str(claims.get("sid") or ""),
                kind=str(claims.get("k") or "user"),
                on_behalf=str(claims.get("obo") or ""),
                policy_override=policy,
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError, zlib.error):
            return None
        if not principal.tenant_id:
            return None
        with self._lock:
            self._cache[token] = (float(claims["exp"]) + 5, principal)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def from_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> Principal | None:
        """The verified principal of a call's metadata (with its locale and request id), or None."""
        md: dict[str, Any] = {k: v for k, v in metadata}
        token = md.get(HEADER_TOKEN)
        if not token or not isinstance(token, str):
            return None
        principal = self.verify(token)
        if principal is None:
            return None
        return principal.with_request(
            locale=str(md.get(_H_LOCALE) or "zh-CN"), request_id=str(md.get(_H_REQUEST) or "")
        )


_default_codec: PrincipalCodec | None = None
_default_lock = threading.Lock()


def default_codec() -> PrincipalCodec:
    """The installation's codec (CRM_INTERNAL_SECRET), read once per process."""
    global _default_codec
    with _default_lock:
        if _default_codec is None:
            _default_codec = PrincipalCodec.from_env()
        return _default_codec


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The principal of the call being served; raises Unauthenticated outside one."""
    from crm_runtime.errors import Unauthenticated

    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no valid principal token in call metadata")
    return principal


def optional_principal() -> Principal | None:
    """The principal of the call being served, or None."""
    return _current.get()


@contextmanager
def principal_context(principal: Principal | None) -> Iterator[None]:
    """Make `principal` current for the duration of the block."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)
