"""A client over its request rate gets 429 problem+json with Retry-After; others are unaffected."""

from __future__ import annotations

import dataclasses
from typing import Any


def test_a_client_over_its_rate_gets_429(settings: Any, gw_store: Any, form_service: Any, record_service: Any) -> None:
    from gateway import create_app
    from gateway.clients import Services

    app = create_app(
        {
            "GATEWAY_SETTINGS": dataclasses.replace(settings, rate_limit_per_second=0.5, rate_limit_burst=3),
            "GATEWAY_STORE": gw_store,
            "GATEWAY_SERVICES": Services(form=form_service, record=record_service),
            "TESTING": True,
        }
    )
    client = app.test_client()
    statuses = [
        client.get("/api/v1/me", headers={"Authorization": "Bearer x"}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
        for _ in range(4)
    ]
    assert [r.status_code for r in statuses[:3]] == [401, 401, 401]
    limited = statuses[3]
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert limited.get_json()["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) >= 1
    # another client (another token) still gets through
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer y"}).status_code == 401
    # health and metrics are not API calls and are never limited
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
