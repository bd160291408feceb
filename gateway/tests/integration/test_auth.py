"""Login, refresh rotation and reuse detection, logout, /me and the failed-login lockout."""

from __future__ import annotations

import threading
from typing import Any

import jwt
import pytest

pytestmark = pytest.mark.integration


def test_login_returns_a_token_pair_with_claims(client: Any, helpers: Any, settings: Any) -> None:
    resp = helpers.login(client, "admin", helpers.ADMIN_PASSWORD)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"]
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"], issuer="crm-gateway")
    assert claims["tenant"] == "default"
    assert claims["role"] == "admin"
    assert claims["dept"]
    assert claims["exp"] - claims["iat"] == 900


def test_wrong_password_is_401_problem_in_the_callers_language(client: Any, helpers: Any) -> None:
    zh = helpers.login(client, "admin", "wrong")
    assert zh.status_code == 401
    assert zh.mimetype == "application/problem+json"
    assert zh.get_json()["detail"] == "用户名或密码错误"
    en = client.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": "wrong"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    body = en.get_json()
    assert body["detail"] == "Wrong username or password"
    assert body["code"] == "invalid_credentials"
    assert body["status"] == 401


def test_unknown_tenant_cannot_log_in(client: Any, helpers: Any) -> None:
    assert helpers.login(client, "admin", helpers.ADMIN_PASSWORD, tenant="nope").status_code == 401


def test_me_requires_a_valid_jwt(client: Any, helpers: Any, admin_token: str) -> None:
    assert client.get("/api/v1/me").status_code == 401
    bad = client.get("/api/v1/me", headers=helpers.bearer(admin_token + "x"))
    assert bad.status_code == 401
    assert bad.get_json()["code"] == "unauthenticated"
    me = client.get("/api/v1/me", headers=helpers.bearer(admin_token)).get_json()
    assert me["username"] == "admin"
    assert me["tenant"] == {"id": "default", "name": "默认租户", "time_zone": "Asia/Shanghai"}
    assert "password_hash" not in me


def test_expired_access_token_is_refused(client: Any, helpers: Any, settings: Any, admin_token: str) -> None:
    claims = jwt.decode(admin_token, settings.jwt_secret, algorithms=["HS256"], issuer="crm-gateway")
    claims["exp"] = claims["iat"] - 1
    expired = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    assert client.get("/api/v1/me", headers=helpers.bearer(expired)).status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_session(client: Any, helpers: Any) -> None:
    first = helpers.login(client, "admin", helpers.ADMIN_PASSWORD).get_json()
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_body = second.get_json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=helpers.bearer(second_body["access_token"])).status_code == 200

    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.get_json()["code"] == "refresh_token_reused"
    # the reuse revoked the session: the newest refresh token is dead too
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": second_body["refresh_token"]})
    assert after.status_code == 401


def test_one_refresh_token_spent_by_concurrent_requests_never_rotates_twice(
    app: Any, client: Any, helpers: Any, gw_store: Any, monkeypatch: Any
) -> None:
    first = helpers.login(client, "admin", helpers.ADMIN_PASSWORD).get_json()
    barrier = threading.Barrier(8)
    read_all = threading.Barrier(8)  # the worst interleaving: every request reads the unspent token first
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    tokens = type(gw_store).refresh_tokens.fget(gw_store)
    spent_hash = tokens.find_one({}, {"_id": 1})["_id"]  # the one login's refresh token
    waiting = [8]

    class ReadTogether:
        def __getattr__(self, name: str) -> Any:
            return getattr(tokens, name)

        def find_one(self, *args: Any, **kwargs: Any) -> Any:
            doc = tokens.find_one(*args, **kwargs)
            with lock:
                together = doc is not None and doc["_id"] == spent_hash and waiting[0] > 0
                waiting[0] -= int(together)
            if together:
                try:
                    read_all.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            return doc

    monkeypatch.setattr(type(gw_store), "refresh_tokens", property(lambda self: ReadTogether()))

    def spend() -> None:
        own = app.test_client()
        barrier.wait()
        resp = own.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        with lock:
            answers.append((resp.status_code, resp.get_json() or {}))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # one token is spent once: at most one new pair, the others are reuses (which revoke the session,
    # so the one that won may itself be refused if the revocation came first)
    won = [body for status, body in answers if status == 200]
    refused = [body["code"] for status, body in answers if status == 401]
    assert len(won) <= 1 and len(won) + len(refused) == 8
    assert refused.count("refresh_token_reused") >= 7 - len(won)
    assert set(refused) <= {"refresh_token_reused", "invalid_refresh_token"}
    for body in won:  # the reuse ended the session: the new refresh token is dead too
        again = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert again.status_code == 401


def test_refresh_token_is_stored_hashed(client: Any, helpers: Any, gw_store: Any) -> None:
    body = helpers.login(client, "admin", helpers.ADMIN_PASSWORD).get_json()
    assert gw_store.refresh_tokens.find_one({"_id": body["refresh_token"]}) is None
    assert gw_store.refresh_tokens.count_documents({}) == 1


def test_logout_ends_the_session(client: Any, helpers: Any) -> None:
    body = helpers.login(client, "admin", helpers.ADMIN_PASSWORD).get_json()
    out = client.post("/api/v1/auth/logout", headers=helpers.bearer(body["access_token"]))
    assert out.status_code == 204
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401
    assert again.get_json()["code"] == "invalid_refresh_token"


def test_unknown_refresh_token_is_401(client: Any) -> None:
    resp = client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert resp.status_code == 401


def test_twenty_failures_lock_that_account_and_address_only(client: Any, helpers: Any) -> None:
    statuses = [helpers.login(client, "admin", "wrong", address="10.1.1.1").status_code for _ in range(20)]
    assert statuses == [401] * 20
    locked = helpers.login(client, "admin", helpers.ADMIN_PASSWORD, address="10.1.1.1")
    assert locked.status_code == 429
    assert locked.mimetype == "application/problem+json"
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert locked.get_json()["code"] == "too_many_login_failures"
    # another address still logs in, and the same address may try another account
    assert helpers.login(client, "admin", helpers.ADMIN_PASSWORD, address="10.2.2.2").status_code == 200
    assert helpers.login(client, "someone", "x", address="10.1.1.1").status_code == 401


def test_success_resets_the_failure_count(client: Any, helpers: Any) -> None:
    for _ in range(19):
        helpers.login(client, "admin", "wrong", address="10.3.3.3")
    assert helpers.login(client, "admin", helpers.ADMIN_PASSWORD, address="10.3.3.3").status_code == 200
    assert helpers.login(client, "admin", "wrong", address="10.3.3.3").status_code == 401


def test_deactivated_user_cannot_log_in_or_refresh(client: Any, helpers: Any, admin_token: str) -> None:
    created = client.post(
        "/api/v1/users",
        json={"username": "li.lei", "password": "Secret-123", "role": "sales"},
        headers=helpers.bearer(admin_token),
    ).get_json()
    tokens = helpers.login(client, "li.lei", "Secret-123").get_json()
    client.patch(f"/api/v1/users/{created['id']}", json={"active": False}, headers=helpers.bearer(admin_token))
    assert helpers.login(client, "li.lei", "Secret-123").status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
