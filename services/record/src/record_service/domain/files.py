"""Which uploaded files a record holds: the ids of its attachment and image values, at any depth.

Stored on each record as `files` (index (tenant_id, files)), so a download can
find the records that hold a file and check that the caller sees one of them.
An attachment value is a list of {id, name, size, content_type}; sub-table
rows hold them too, so the data is walked rather than read field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def attachment_ids(data: Any) -> list[str]:
    """Sorted ids of every attachment summary inside a record's data."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            if isinstance(value.get("id"), str) and "content_type" in value and "size" in value:
                found.add(value["id"])
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return sorted(found)
