"""Pure functions: locale negotiation, sort/filter parameters, gRPC status mapping, validation errors, passwords."""

from __future__ import annotations

import json

import grpc
import pytest

from gateway.errors import status_for_rpc, validation_errors
from gateway.i18n import negotiate_locale, t
from gateway.passwords import Passwords
from gateway.routes.records import filter_json, sort_json


class _Err(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("fr-FR, en;q=0.5", "en"),
        ("en;q=0.3, zh-TW;q=0.8", "zh-CN"),
        ("de", "zh-CN"),
    ],
)
def test_negotiate_locale(header: str | None, locale: str) -> None:
    assert negotiate_locale(header) == locale


def test_messages_exist_in_both_languages() -> None:
    assert t("invalid_credentials", "en") == "Wrong username or password"
    assert t("invalid_credentials", "zh-CN") == "用户名或密码错误"
    assert t("route_not_found", "en", path="/x") == "No such endpoint: /x"


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-created_at", [{"field": "created_at", "direction": "desc"}]),
        ("a, -b", [{"field": "a", "direction": "asc"}, {"field": "b", "direction": "desc"}]),
        ('[{"field": "x", "direction": "desc"}]', [{"field": "x", "direction": "desc"}]),
        ([{"field": "y", "direction": "asc"}], [{"field": "y", "direction": "asc"}]),
    ],
)
def test_sort_json(sort: object, expected: list[dict[str, str]]) -> None:
    assert json.loads(sort_json(sort)) == expected


def test_empty_sort_and_filter_are_empty_strings() -> None:
    assert sort_json(None) == "" and sort_json("") == ""
    assert filter_json(None) == "" and filter_json("") == ""
    assert json.loads(filter_json({"and": []})) == {"and": []}


@pytest.mark.parametrize(
    ("code", "problem_status", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, None, 422),
        (grpc.StatusCode.NOT_FOUND, None, 404),
        (grpc.StatusCode.ALREADY_EXISTS, None, 409),
        (grpc.StatusCode.ABORTED, None, 409),
        (grpc.StatusCode.PERMISSION_DENIED, None, 403),
        (grpc.StatusCode.UNAUTHENTICATED, None, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413, 413),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, 429),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, None, 400),
        (grpc.StatusCode.UNAVAILABLE, None, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, 504),
        (grpc.StatusCode.INTERNAL, None, 500),
    ],
)
def test_status_for_rpc(code: grpc.StatusCode, problem_status: int | None, status: int) -> None:
    assert status_for_rpc(_Err(code), {"status": problem_status} if problem_status else {}) == status


def test_validation_errors_flatten_nested_marshmallow_messages() -> None:
    code, errors = validation_errors(
        {
            "json": {
                "a": ["Unknown field."],
                "b": {"c": ["Not a valid integer."]},
                "d": ["Missing data for required field."],
            }
        }
    )
    assert code == "validation_failed"
    rules = {e["field"]: e["rule"] for e in errors}
    assert rules == {"a": "unknown_field", "b.c": "invalid", "d": "required"}
    assert next(e for e in errors if e["field"] == "b.c")["params"] == {"reason": "Not a valid integer."}


def test_non_object_body_code() -> None:
    code, errors = validation_errors({"json": {"_schema": ["Invalid input type."]}})
    assert code == "not_an_object" and errors[0]["rule"] == "type"


def test_passwords_hash_and_verify() -> None:
    pw = Passwords(time_cost=1, memory_kib=1024)
    stored = pw.hash("s3cret-pass")
    assert stored.startswith("$argon2id$")
    assert pw.verify(stored, "s3cret-pass")
    assert not pw.verify(stored, "wrong")
    assert not pw.verify(None, "anything")
    assert not pw.verify("garbage", "s3cret-pass")


def test_at_most_a_few_password_hashes_run_at_once() -> None:
    """Each argon2 run holds 64 MiB: concurrent logins wait for a slot instead of growing the worker."""
    import threading
    import time

    from gateway.passwords import Passwords

    pw = Passwords(time_cost=1, memory_kib=1024, max_parallel=2)
    running, most = [0], [0]
    lock = threading.Lock()

    class Slow:  # a stand-in for argon2's PasswordHasher that records how many run at once
        def _run(self) -> None:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

        def verify(self, stored: str, password: str) -> bool:
            self._run()
            return True

        def hash(self, password: str) -> str:
            self._run()
            return "h"

    pw._hasher = Slow()  # type: ignore[assignment]
    threads = [threading.Thread(target=pw.verify, args=("h", "x")) for _ in range(6)]
    threads += [threading.Thread(target=pw.hash, args=("x",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2
