"""The form cache's invalidation consumer: form.published on a per-process transient queue."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from pymongo.database import Database

from crm_runtime.events import EventConsumer
from record_service.forms.grpc_source import CachedFormSource

FORM_EXCHANGE = "form.events"
FORM_PUBLISHED = "form.published"


def form_cache_consumer(amqp_url: str, cache: CachedFormSource, db: Database[Any]) -> EventConsumer:
    """An EventConsumer (plain thread) bound to form.events/form.published that invalidates `cache`.

    Each process has its own auto-deleted queue, so every replica hears every publish.
    """
    queue = f"record.form-cache.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        amqp_url,
        queue,
        [(FORM_EXCHANGE, FORM_PUBLISHED)],
        cache.on_published,
        db["form_cache_processed"],
        transient=True,
    )
    consumer.ensure_indexes()
    return consumer
