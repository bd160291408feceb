"""A plain fake of crm_schema.ValidationContext for the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest


class FakeContext:
    """In-memory relations and attachments, reversible 'encryption', fixed clock."""

    def __init__(self, locale: str = "zh-CN", role: str = "sales") -> None:
        self.locale = locale
        self.tz = ZoneInfo("Asia/Shanghai")
        self.now = datetime(2024, 5, 20, 2, 0, tzinfo=UTC)
        self.role = role
        self.records: dict[str, set[str]] = {"customer": {"c1", "c2", "c3"}, "contact": {"p1"}}
        self.files: dict[str, dict[str, Any]] = {
            "f1": {"id": "f1", "name": "合同.pdf", "size": 1000, "content_type": "application/pdf"},
            "f2": {"id": "f2", "name": "logo.png", "size": 5000, "content_type": "image/png"},
            "big": {"id": "big", "name": "huge.zip", "size": 50_000_000, "content_type": "application/zip"},
        }
        self.relation_calls: list[tuple[str, list[str]]] = []

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        self.relation_calls.append((form_id, list(ids)))
        return {i for i in ids if i not in self.records.get(form_id, set())}

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: dict(self.files[i]) for i in ids if i in self.files}

    def encrypt(self, plaintext: str) -> str:
        return "enc:" + plaintext[::-1]

    def decrypt(self, token: str) -> str:
        if not token.startswith("enc:"):
            raise ValueError("not a token")
        return token[4:][::-1]


@pytest.fixture
def ctx() -> FakeContext:
    """A zh-CN context."""
    return FakeContext()


@pytest.fixture
def en_ctx() -> FakeContext:
    """An en context."""
    return FakeContext(locale="en")


@pytest.fixture
def make_ctx() -> Callable[..., FakeContext]:
    """Build a context with other locale/role."""
    return FakeContext


def fld(key: str, type_: str, zh: str = "", en: str = "", **props: Any) -> dict[str, Any]:
    """A field definition."""
    return {"key": key, "type": type_, "label": {"zh-CN": zh or key, "en": en or key}, **props}


@pytest.fixture
def f() -> Callable[..., dict[str, Any]]:
    """The field-definition builder."""
    return fld
