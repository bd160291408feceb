"""A webhook action may not reach the worker's own network unless the installation allows it (SSRF)."""

from __future__ import annotations

import pytest

from workflow_service.domain.actions import ActionFailed, refuse_private_address


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8082/metrics",
        "http://localhost/",
        "http://10.0.0.5/erp",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:50052/",
    ],
)
def test_loopback_private_and_link_local_addresses_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKFLOW_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with pytest.raises(ActionFailed, match="not public"):
        refuse_private_address(url)


def test_a_public_address_passes_and_an_installation_may_allow_its_private_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORKFLOW_WEBHOOK_ALLOW_PRIVATE", raising=False)
    refuse_private_address("https://93.184.216.34/hook")
    monkeypatch.setenv("WORKFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    refuse_private_address("http://10.0.0.5/erp")
