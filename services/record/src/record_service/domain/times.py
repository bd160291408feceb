"""Times as the record service keeps and shows them: UTC, milliseconds (what the store keeps), ISO 8601 with Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now in UTC, truncated to milliseconds (what the store keeps), so returned times equal stored ones."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """API form of a time: ISO 8601 UTC with Z."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
