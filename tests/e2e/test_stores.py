"""Each service owns its database, locally in its own store process (issue #7)."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from tests.support.launcher import Platform

from .conftest import Client

OWNED = {"record": "crm_record", "form": "crm_form", "gateway": "crm_gateway", "workflow": "crm_workflow"}


def test_each_service_writes_only_to_its_own_store(platform: Platform, admin: Client) -> None:
    # a write through every service: a record (record service, its outbox and relay), the forms, a session,
    # the workflow's run of the template automation the new customer triggers
    admin.ok("POST", "/forms/customer/records", json={"data": {"customer_name": "独立存储测试有限公司", "level": "B"}})
    assert platform.store is platform.stores["record"]
    assert {platform.env[f"{s.upper()}_MONGO_URL"] for s in OWNED} == {s.url for s in platform.stores.values()}
    assert len({s.port for s in platform.stores.values()}) == len(OWNED)
    for service, store in platform.stores.items():
        client: MongoClient[Any] = MongoClient(store.url, serverSelectionTimeoutMS=5000)
        try:
            names = set(client.list_database_names()) - {"admin", "local", "config"}
            assert names == {OWNED[service]}, f"the {service} store holds {sorted(names)}"
            assert client[OWNED[service]].list_collection_names(), f"{OWNED[service]} is empty"
        finally:
            client.close()
