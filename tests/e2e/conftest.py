"""End-to-end fixtures: one platform (separate processes) for the e2e session."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.launcher import ROOT, Platform, start_platform


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    """The whole platform, started as `make run` would, on free ports."""
    p = start_platform()
    yield p
    p.stop()


class Client:
    """A REST client of the gateway holding a bearer token."""

    def __init__(self, base: str, token: str | None = None, locale: str = "zh-CN") -> None:
        self.base = base + "/api/v1"
        self.http = requests.Session()
        self.token = token
        self.locale = locale

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Auth and language headers."""
        h = {"Accept-Language": self.locale}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """Any request; returns the response unchecked."""
        headers = self.headers(kw.pop("headers", None))
        return self.http.request(method, self.base + path, headers=headers, timeout=120, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        """A request that must succeed; returns its JSON."""
        resp = self.request(method, path, **kw)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    def login(self, username: str, password: str, tenant: str = "default") -> dict[str, Any]:
        """Log in and keep the access token."""
        body = self.ok("POST", "/auth/login", json={"username": username, "password": password, "tenant": tenant})
        self.token = body["access_token"]
        return body


@pytest.fixture(scope="session")
def admin(platform: Platform) -> Client:
    """The seeded admin, logged in."""
    c = Client(platform.base_url)
    c.login("admin", platform.admin_password)
    return c


def create_tenant(platform: Platform, key: str, password: str, name: str = "E2E") -> None:
    """A new tenant with its admin (`admin`, `password`) and the CRM template, as an operator makes one."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "tenant", "create", key, "--name", name, "--admin-password", password],
        cwd=ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
