"""Fixtures of the workflow's integration tests: one store for the module, a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from crm_runtime.testing import StoreProcess, start_store
from services.workflow.tests.integration.fakes import FakeRecords
from services.workflow.tests.integration.support import SALES, TENANT, World
from workflow_service.domain.ports import DirectoryUser
from workflow_service.store.repository import MongoWorkflowStore


@pytest.fixture(scope="module")
def server() -> Iterator[StoreProcess]:
    store = start_store(cache_size="256M")
    yield store
    store.stop()


@pytest.fixture()
def world(server: StoreProcess) -> Iterator[World]:
    client: MongoClient[Any] = MongoClient(server.url, tz_aware=True)
    db = client[f"wf_{uuid.uuid4().hex[:10]}"]
    store = MongoWorkflowStore(db)
    store.ensure_indexes()
    for i, user_id in enumerate(SALES):
        store.put_user(
            DirectoryUser(TENANT, user_id, f"销售{i}", department_id="d-team1", manager_id="u-boss", roles=("sales",))
        )
    store.put_user(
        DirectoryUser(TENANT, "u-boss", "经理", department_id="d-sales", roles=("manager",), email="boss@example.com")
    )
    yield World(store, FakeRecords())
    client.drop_database(db.name)
    client.close()
