"""Unit tests: the form cache (invalidation by form.published) and the encryption-key check."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from crm_runtime.config import ConfigError
from crm_runtime.errors import NotFound
from record_service.crypto import FernetCipher
from record_service.domain.forms import FormSchema, StaticFormSource
from record_service.forms.grpc_source import CachedFormSource
from record_service.settings import Settings


class CountingSource(StaticFormSource):
    """A StaticFormSource that counts lookups."""

    calls = 0

    def get_published(self, tenant_id: str, form_id_or_key: str, version: int = 0) -> FormSchema:
        self.calls += 1
        return super().get_published(tenant_id, form_id_or_key, version)


def form(version: int) -> FormSchema:
    return FormSchema("f1", "customer", "t1", version, "name", ({"key": "name", "type": "text"},))


def test_cache_serves_hits_and_forgets_latest_on_form_published() -> None:
    inner = CountingSource([form(1)])
    cache = CachedFormSource(inner)
    assert cache.get_published("t1", "customer").version == 1
    assert cache.get_published("t1", "f1").version == 1  # cached under id and key
    assert inner.calls == 1
    inner.add(form(2))
    assert cache.get_published("t1", "customer").version == 1  # still cached
    cache.on_published(
        {
            "tenant_id": "t1",
            "data": {"form_id": "f1", "key": "customer", "version": 2, "fields": [{"key": "name", "type": "text"}]},
        }
    )
    assert cache.get_published("t1", "customer").version == 2
    assert cache.get_published("t1", "f1", 1).version == 1  # numbered versions stay cached
    with pytest.raises(NotFound):
        cache.get_published("t2", "customer")


def test_cache_ttl_expires_latest() -> None:
    now = [0.0]
    inner = CountingSource([form(1)])
    cache = CachedFormSource(inner, ttl=10, clock=lambda: now[0])
    cache.get_published("t1", "customer")
    now[0] = 11
    cache.get_published("t1", "customer")
    assert inner.calls == 2


def test_encryption_key_is_required_and_checked() -> None:
    base = {"mongo_url": "m", "amqp_url": "a", "grpc_port": 1, "http_port": 2, "log_level": "INFO"}
    for bad in ("", "not base64 !!", "c2hvcnQ="):
        with pytest.raises(ConfigError):
            Settings(**base, field_encryption_key=bad).require_encryption_key()  # type: ignore[arg-type]
    key = Fernet.generate_key().decode()
    assert Settings(**base, field_encryption_key=key).require_encryption_key() == key  # type: ignore[arg-type]
    cipher = FernetCipher(key)
    token = cipher.encrypt("秘密")
    assert token != "秘密" and cipher.decrypt(token) == "秘密"
    with pytest.raises(ValueError):
        FernetCipher(Fernet.generate_key()).decrypt(token)
