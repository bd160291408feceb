"""The event envelope: the one JSON object every event travels in.

Pure (standard library only) so that domain code can build the outbox
document of a change without importing the broker client. The schema is
`proto/crm/events/v1/events.proto` (`crm.events.v1.EventEnvelope`); on the wire
it is JSON `{id, type, tenant_id, occurred_at, source, actor, data}`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = ["encode_envelope", "make_envelope"]


def make_envelope(
    event_type: str, tenant_id: str, data: dict[str, Any], *, source: str, actor: str = "system"
) -> dict[str, Any]:
    """A new event envelope; `occurred_at` is now, in UTC."""
    return {
        "id": uuid.uuid4().hex,
        "type": event_type,
        "tenant_id": tenant_id,
        # fixed width (always microseconds) so that the text sorts in time order
        "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source": source,
        "actor": actor,
        "data": data,
    }


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """The message body published for an envelope: UTF-8 JSON (non-JSON values, e.g. a datetime, as text)."""
    return json.dumps(envelope, ensure_ascii=False, default=str).encode("utf-8")
