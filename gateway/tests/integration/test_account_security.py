"""Account security: password policy, lockout backoff, log out everywhere, TOTP, forced reset, password change."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest

pytestmark = pytest.mark.integration

GOOD = "Blue-Harbor-42"


def _create_user(client: Any, helpers: Any, token: str, username: str, password: str = GOOD, **spec: Any) -> Any:
    return client.post(
        "/api/v1/users",
        json={"username": username, "password": password, "role": "sales", **spec},
        headers=helpers.bearer(token),
    )


def _token(client: Any, helpers: Any, username: str, password: str = GOOD, **extra: Any) -> str:
    resp = helpers.login(client, username, password, **extra)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def _rules(resp: Any, field: str = "password") -> list[str]:
    return [e["rule"] for e in resp.get_json()["errors"] if e["field"] == field]


# ----------------------------------------------------------------------------- password policy


def test_policy_rules_on_user_creation_in_both_languages(client: Any, helpers: Any, admin_token: str) -> None:
    cases = {
        "Ab1-xyz": ["too_short"],
        "abcdefghijklmn": ["too_simple"],
        "Wang.Fang-2024x": ["contains_username"],
        "Password123!": ["breached"],
        "woaini1314": ["too_simple", "breached"],
    }
    for password, rules in cases.items():
        resp = _create_user(client, helpers, admin_token, "wang.fang", password)
        assert resp.status_code == 422, password
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["code"] == "validation_failed"
        assert _rules(resp) == rules, password
    zh = _create_user(client, helpers, admin_token, "wang.fang", "Ab1-xyz").get_json()
    assert zh["errors"][0]["message"] == "密码至少需要 10 个字符"
    en = client.post(
        "/api/v1/users",
        json={"username": "wang.fang", "password": "qwerty123456"},
        headers=helpers.bearer(admin_token, "en"),
    ).get_json()
    assert en["detail"] == "The password does not meet the security requirements"
    assert "data breach" in next(e["message"] for e in en["errors"] if e["rule"] == "breached")
    # nothing was created by the refused attempts; an acceptable password works, a long passphrase needs no classes
    assert helpers.login(client, "wang.fang", "Password123!").status_code == 401
    assert _create_user(client, helpers, admin_token, "wang.fang", "correct horse battery staple").status_code == 201


def test_breached_check_is_case_insensitive_and_the_list_is_large(client: Any, helpers: Any, admin_token: str) -> None:
    from gateway.passwords import breached_passwords, password_violations

    listed = breached_passwords()
    assert len(listed) >= 1000
    for common in ("123456", "password", "qwerty", "iloveyou", "admin123", "woaini1314", "a1b2c3d4", "5201314"):
        assert common in listed
    assert password_violations("P@SSW0RD2024!") == ["breached"]
    assert "breached" in _rules(_create_user(client, helpers, admin_token, "zhao.lei", "QWERTY123456"))


def test_policy_applies_to_a_password_set_through_patch(client: Any, helpers: Any, admin_token: str) -> None:
    user = _create_user(client, helpers, admin_token, "sun.li").get_json()
    resp = client.patch(
        f"/api/v1/users/{user['id']}", json={"password": "iloveyou520"}, headers=helpers.bearer(admin_token)
    )
    assert resp.status_code == 422
    assert "breached" in _rules(resp)
    assert helpers.login(client, "sun.li", GOOD).status_code == 200


# ----------------------------------------------------------------------------- lockout with backoff


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_consecutive_lockouts_double_up_to_the_cap_and_success_resets(gw_store: Any) -> None:
    from gateway.throttle import LoginThrottle

    clock = Clock()
    throttle = LoginThrottle(
        gw_store.login_attempts, max_failures=3, lock_seconds=60, max_lock_seconds=200, clock=clock
    )
    pair = ("default", "admin", "10.9.9.9")

    def fail_until_locked() -> int:
        assert throttle.failed(*pair) is None
        assert throttle.failed(*pair) is None
        lock = throttle.failed(*pair)
        assert lock is not None
        return lock.retry_after

    assert fail_until_locked() == 60
    assert throttle.check(*pair) is not None
    assert throttle.check("default", "admin", "10.9.9.10") is None  # another address is not locked
    clock.advance(61)
    assert throttle.check(*pair) is None
    assert fail_until_locked() == 120
    clock.advance(121)
    assert fail_until_locked() == 200  # 240 capped at 200
    clock.advance(201)
    assert fail_until_locked() == 200
    clock.advance(201)
    throttle.succeeded(*pair)
    assert fail_until_locked() == 60  # a successful login forgets the lockouts


def test_failures_spread_beyond_the_window_do_not_lock(gw_store: Any) -> None:
    from gateway.throttle import LoginThrottle

    clock = Clock()
    throttle = LoginThrottle(gw_store.login_attempts, max_failures=3, lock_seconds=60, clock=clock)
    pair = ("default", "admin", "10.8.8.8")
    throttle.failed(*pair)
    throttle.failed(*pair)
    clock.advance(61)  # the window passed: counting starts over
    assert throttle.failed(*pair) is None
    assert throttle.failed(*pair) is None
    assert throttle.failed(*pair) is not None


def test_second_lockout_over_http_is_longer(client: Any, helpers: Any, gw_store: Any) -> None:
    for _ in range(20):
        assert helpers.login(client, "admin", "wrong", address="10.4.4.4").status_code == 401
    first = helpers.login(client, "admin", "wrong", address="10.4.4.4")
    assert first.status_code == 429
    assert 0 < int(first.headers["Retry-After"]) <= 900
    # the lock is served (moved into the past), the lockout count is kept
    past = datetime.now(UTC) - timedelta(seconds=1)
    gw_store.login_attempts.update_many({}, {"$set": {"locked_until": past, "window_until": past}})
    statuses = [helpers.login(client, "admin", "wrong", address="10.4.4.4").status_code for _ in range(21)]
    assert statuses == [401] * 20 + [429]
    second = helpers.login(client, "admin", helpers.ADMIN_PASSWORD, address="10.4.4.4")
    assert second.status_code == 429
    assert 900 < int(second.headers["Retry-After"]) <= 1800


# ----------------------------------------------------------------------------- log out everywhere


def test_logout_all_ends_every_session_of_the_caller_only(client: Any, helpers: Any, admin_token: str) -> None:
    _create_user(client, helpers, admin_token, "li.na")
    first = helpers.login(client, "li.na", GOOD).get_json()
    second = helpers.login(client, "li.na", GOOD, address="10.0.0.2").get_json()
    assert client.post("/api/v1/auth/logout-all").status_code == 401  # no token
    out = client.post("/api/v1/auth/logout-all", headers=helpers.bearer(first["access_token"]))
    assert out.status_code == 204
    for body in (first, second):
        assert client.get("/api/v1/me", headers=helpers.bearer(body["access_token"])).status_code == 401
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}).status_code == 401
    # the admin's session is untouched, and li.na can sign in again
    assert client.get("/api/v1/me", headers=helpers.bearer(admin_token)).status_code == 200
    assert helpers.login(client, "li.na", GOOD).status_code == 200


# ----------------------------------------------------------------------------- TOTP


def _enable_totp(client: Any, helpers: Any, token: str) -> pyotp.TOTP:
    setup = client.post("/api/v1/auth/totp/setup", headers=helpers.bearer(token))
    assert setup.status_code == 200
    body = setup.get_json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    totp = pyotp.TOTP(body["secret"])
    enabled = client.post("/api/v1/auth/totp/enable", json={"code": totp.now()}, headers=helpers.bearer(token))
    assert enabled.status_code == 204, enabled.get_data(as_text=True)
    return totp


def _next_code(totp: pyotp.TOTP) -> str:
    return totp.at(time.time(), counter_offset=1)


def test_totp_setup_enable_and_login(client: Any, helpers: Any, admin_token: str, gw_store: Any) -> None:
    user = _create_user(client, helpers, admin_token, "zhou.min").get_json()
    token = _token(client, helpers, "zhou.min")
    assert client.post("/api/v1/auth/totp/setup").status_code == 401
    assert client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()["totp_enabled"] is False
    # enable without setup, and with a wrong code
    assert (
        client.post("/api/v1/auth/totp/enable", json={"code": "123456"}, headers=helpers.bearer(token)).status_code
        == 409
    )
    setup = client.post("/api/v1/auth/totp/setup", headers=helpers.bearer(token)).get_json()
    wrong = client.post("/api/v1/auth/totp/enable", json={"code": "000000"}, headers=helpers.bearer(token))
    assert wrong.status_code == 403
    assert wrong.get_json()["code"] == "totp_invalid"
    # a pending secret does not yet guard the login
    assert helpers.login(client, "zhou.min", GOOD).status_code == 200
    totp = pyotp.TOTP(setup["secret"])
    assert (
        client.post("/api/v1/auth/totp/enable", json={"code": totp.now()}, headers=helpers.bearer(token)).status_code
        == 204
    )
    again = client.post("/api/v1/auth/totp/setup", headers=helpers.bearer(token))
    assert again.status_code == 409

    # stored encrypted: the base32 secret is nowhere in the document
    doc = gw_store.users.find_one({"_id": user["id"]})
    assert setup["secret"] not in str(doc)
    assert doc["totp"]["secret"].startswith("gAAAA")  # a Fernet token

    missing = helpers.login(client, "zhou.min", GOOD)
    assert missing.status_code == 401
    assert missing.get_json()["code"] == "totp_required"
    bad = helpers.login(client, "zhou.min", GOOD, totp_code="111111")
    assert bad.status_code == 401
    assert bad.get_json()["code"] == "totp_invalid"
    en = client.post(
        "/api/v1/auth/login",
        json={"username": "zhou.min", "password": GOOD},
        headers={"Accept-Language": "en"},
    ).get_json()
    assert en["detail"] == "Enter the authenticator code (totp_code)"
    code = _next_code(totp)
    ok = helpers.login(client, "zhou.min", GOOD, totp_code=code)
    assert ok.status_code == 200
    assert client.get("/api/v1/me", headers=helpers.bearer(ok.get_json()["access_token"])).get_json()["totp_enabled"]
    replay = helpers.login(client, "zhou.min", GOOD, totp_code=code)
    assert replay.status_code == 401
    assert replay.get_json()["code"] == "totp_invalid"
    # a wrong password with a right code is still just wrong credentials
    assert (
        helpers.login(client, "zhou.min", "Wrong-Pass-99", totp_code=code).get_json()["code"] == "invalid_credentials"
    )


def test_wrong_totp_codes_count_for_the_lockout(client: Any, helpers: Any, admin_token: str) -> None:
    _create_user(client, helpers, admin_token, "hu.jing")
    _enable_totp(client, helpers, _token(client, helpers, "hu.jing"))
    statuses = [
        helpers.login(client, "hu.jing", GOOD, address="10.5.5.5", totp_code="999999").status_code for _ in range(20)
    ]
    assert statuses == [401] * 20
    locked = helpers.login(client, "hu.jing", GOOD, address="10.5.5.5", totp_code="999999")
    assert locked.status_code == 429


def test_totp_disable_needs_password_and_code(client: Any, helpers: Any, admin_token: str) -> None:
    _create_user(client, helpers, admin_token, "ma.qiang")
    token = _token(client, helpers, "ma.qiang")
    assert (
        client.post(
            "/api/v1/auth/totp/disable", json={"password": GOOD, "code": "123456"}, headers=helpers.bearer(token)
        ).status_code
        == 409
    )  # not on yet
    totp = _enable_totp(client, helpers, token)
    wrong_pw = client.post(
        "/api/v1/auth/totp/disable",
        json={"password": "Not-The-Pass-1", "code": _next_code(totp)},
        headers=helpers.bearer(token),
    )
    assert wrong_pw.status_code == 403
    assert wrong_pw.get_json()["code"] == "current_password_invalid"
    wrong_code = client.post(
        "/api/v1/auth/totp/disable", json={"password": GOOD, "code": "000000"}, headers=helpers.bearer(token)
    )
    assert wrong_code.status_code == 403
    assert wrong_code.get_json()["code"] == "totp_invalid"
    assert client.post("/api/v1/auth/totp/disable", json={"password": GOOD, "code": "1"}).status_code == 401
    off = client.post(
        "/api/v1/auth/totp/disable", json={"password": GOOD, "code": _next_code(totp)}, headers=helpers.bearer(token)
    )
    assert off.status_code == 204
    assert helpers.login(client, "ma.qiang", GOOD).status_code == 200


def test_totp_unit_window_and_replay(gw_store: Any) -> None:
    from gateway.totp import Totp

    users = gw_store.users
    users.insert_one({"_id": "u-totp", "tenant_id": "default", "username": "unit"})
    totp = Totp(users, "some-jwt-secret-of-the-installation")
    setup = totp.setup(users.find_one({"_id": "u-totp"}))
    gen = pyotp.TOTP(setup.secret)
    t0 = 1_900_000_000.0
    assert not totp.enable(users.find_one({"_id": "u-totp"}), gen.at(t0 - 90), now=t0)  # three steps old
    assert totp.enable(users.find_one({"_id": "u-totp"}), gen.at(t0), now=t0)
    doc = users.find_one({"_id": "u-totp"})
    assert not totp.verify(doc, gen.at(t0), now=t0)  # the enabling code is spent
    assert totp.verify(doc, gen.at(t0 + 30), now=t0 + 20)  # next step, within the drift window
    assert not totp.verify(users.find_one({"_id": "u-totp"}), gen.at(t0 + 30), now=t0 + 31)  # replay
    assert not totp.verify(users.find_one({"_id": "u-totp"}), "abcdef", now=t0 + 60)
    # another installation secret cannot read the stored secret
    other = Totp(users, "another-installation-secret-xyz")
    assert not other.verify(users.find_one({"_id": "u-totp"}), gen.at(t0 + 90), now=t0 + 90)


# ----------------------------------------------------------------------------- forced reset and password change


def test_admin_reset_forces_a_change_at_next_login(client: Any, helpers: Any, admin_token: str) -> None:
    user = _create_user(client, helpers, admin_token, "chen.jie").get_json()
    old = helpers.login(client, "chen.jie", GOOD).get_json()
    reset = client.post(f"/api/v1/users/{user['id']}/password-reset", json={}, headers=helpers.bearer(admin_token))
    assert reset.status_code == 200
    body = reset.get_json()
    assert body["must_change_password"] is True
    temporary = body["temporary_password"]
    from gateway.passwords import password_violations

    assert password_violations(temporary, "chen.jie") == []
    # the old sessions ended, the old password is gone
    assert client.get("/api/v1/me", headers=helpers.bearer(old["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}).status_code == 401
    assert helpers.login(client, "chen.jie", GOOD).status_code == 401

    required = helpers.login(client, "chen.jie", temporary)
    assert required.status_code == 403
    problem = required.get_json()
    assert problem["code"] == "password_change_required"
    assert "access_token" not in problem
    change_token = problem["password_change_token"]
    assert problem["expires_in"] == 600
    # the change token is not an access token
    assert client.get("/api/v1/me", headers=helpers.bearer(change_token)).status_code == 401

    weak = client.post(
        "/api/v1/auth/password", json={"password_change_token": change_token, "new_password": "chen.jie-2024!"}
    )
    assert weak.status_code == 422
    assert _rules(weak, "new_password") == ["contains_username"]
    reused = client.post(
        "/api/v1/auth/password", json={"password_change_token": change_token, "new_password": temporary}
    )
    assert reused.status_code == 422
    assert _rules(reused, "new_password") == ["reused"]
    changed = client.post(
        "/api/v1/auth/password", json={"password_change_token": change_token, "new_password": "Silver-Moon-77"}
    )
    assert changed.status_code == 200
    tokens = changed.get_json()
    assert client.get("/api/v1/me", headers=helpers.bearer(tokens["access_token"])).status_code == 200
    # the token worked once; the flag is cleared
    again = client.post(
        "/api/v1/auth/password", json={"password_change_token": change_token, "new_password": "Other-Moon-88"}
    )
    assert again.status_code == 401
    assert again.get_json()["code"] == "invalid_password_change_token"
    assert helpers.login(client, "chen.jie", "Silver-Moon-77").status_code == 200


def test_admin_reset_with_a_chosen_password_and_disable_totp(client: Any, helpers: Any, admin_token: str) -> None:
    user = _create_user(client, helpers, admin_token, "lin.yan").get_json()
    _enable_totp(client, helpers, _token(client, helpers, "lin.yan"))
    breached = client.post(
        f"/api/v1/users/{user['id']}/password-reset",
        json={"password": "admin@123"},
        headers=helpers.bearer(admin_token),
    )
    assert breached.status_code == 422
    assert "breached" in _rules(breached)
    reset = client.post(
        f"/api/v1/users/{user['id']}/password-reset",
        json={"password": "Temp-Garden-51", "disable_totp": True},
        headers=helpers.bearer(admin_token),
    )
    assert reset.status_code == 200
    assert "temporary_password" not in reset.get_json()
    required = helpers.login(client, "lin.yan", "Temp-Garden-51")
    assert required.status_code == 403  # no totp_required: two-factor was turned off
    assert required.get_json()["code"] == "password_change_required"


def test_reset_is_for_tenant_admins_of_the_users_tenant(
    client: Any, helpers: Any, admin_token: str, gw_store: Any, settings: Any
) -> None:
    target = _create_user(client, helpers, admin_token, "guo.wei").get_json()
    _create_user(client, helpers, admin_token, "xu.li")
    sales = _token(client, helpers, "xu.li")
    url = f"/api/v1/users/{target['id']}/password-reset"
    assert client.post(url, json={}).status_code == 401
    denied = client.post(url, json={}, headers=helpers.bearer(sales))
    assert denied.status_code == 403
    assert helpers.login(client, "guo.wei", GOOD).status_code == 200  # untouched
    # an admin of another tenant does not see this user
    from gateway.tenants import create_tenant

    class Form:
        def healthy(self) -> bool:
            return True

        def unary(self, method: str, request: Any, principal: Any, timeout: float | None = None) -> Any:
            return None

    create_tenant(settings, gw_store, Form(), key="other", name="Other", admin_password="Other-Boss-Pw-9x")
    other_admin = _token(client, helpers, "admin", "Other-Boss-Pw-9x", tenant="other")
    foreign = client.post(url, json={}, headers=helpers.bearer(other_admin))
    assert foreign.status_code == 404
    assert helpers.login(client, "guo.wei", GOOD).status_code == 200
    assert (
        client.post("/api/v1/users/nope/password-reset", json={}, headers=helpers.bearer(admin_token)).status_code
        == 404
    )


def test_self_service_password_change(client: Any, helpers: Any, admin_token: str) -> None:
    _create_user(client, helpers, admin_token, "yang.fang")
    login = helpers.login(client, "yang.fang", GOOD).get_json()
    token = login["access_token"]
    assert client.post("/api/v1/auth/password", json={"new_password": "Fresh-River-31"}).status_code == 401
    missing = client.post(
        "/api/v1/auth/password", json={"new_password": "Fresh-River-31"}, headers=helpers.bearer(token)
    )
    assert missing.status_code == 422
    assert missing.get_json()["errors"][0]["field"] == "current_password"
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "Not-It-123456", "new_password": "Fresh-River-31"},
        headers=helpers.bearer(token),
    )
    assert wrong.status_code == 403
    assert wrong.get_json()["code"] == "current_password_invalid"
    breached = client.post(
        "/api/v1/auth/password",
        json={"current_password": GOOD, "new_password": "1qaz2wsx3edc"},
        headers=helpers.bearer(token),
    )
    assert breached.status_code == 422
    assert "breached" in _rules(breached, "new_password")
    ok = client.post(
        "/api/v1/auth/password",
        json={"current_password": GOOD, "new_password": "Fresh-River-31"},
        headers=helpers.bearer(token),
    )
    assert ok.status_code == 200
    # every earlier session ended; the answer is a working pair
    assert client.get("/api/v1/me", headers=helpers.bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/me", headers=helpers.bearer(ok.get_json()["access_token"])).status_code == 200
    assert helpers.login(client, "yang.fang", "Fresh-River-31").status_code == 200
    # a made-up change token is refused
    forged = client.post(
        "/api/v1/auth/password", json={"password_change_token": "x.y.z", "new_password": "Fresh-Sea-42"}
    )
    assert forged.status_code == 401
    assert forged.get_json()["code"] == "invalid_password_change_token"
