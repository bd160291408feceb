"""Events of the form service: exchange `form.events`, routing key = event type (nameko style).

`form.published` carries {form_id, key, app_id, version, title_field, fields}.
Envelopes are written to the `outbox` collection with the change that caused
them and published by crm_runtime's OutboxRelay.
"""

from __future__ import annotations

from typing import Any

from crm_runtime.envelope import make_envelope
from form_service.domain.models import FORM_PUBLISHED, FormEvent

SOURCE = "form"
EXCHANGE = "form.events"
OUTBOX_ENVELOPE_FIELD = "event"

__all__ = ["EXCHANGE", "FORM_PUBLISHED", "OUTBOX_ENVELOPE_FIELD", "SOURCE", "envelope", "outbox_document"]


def envelope(event: FormEvent) -> dict[str, Any]:
    """The wire envelope of a domain event."""
    return make_envelope(event.type, event.tenant_id, event.data, source=SOURCE, actor=event.actor)


def outbox_document(event: FormEvent) -> dict[str, Any]:
    """The outbox document of a domain event, in the shape OutboxRelay reads."""
    env = envelope(event)
    return {"_id": env["id"], "tenant_id": event.tenant_id, OUTBOX_ENVELOPE_FIELD: env, "published": False}
