"""Which uploaded files a record holds: the ids of its attachment and image values, at any depth.

Stored on each record as `files` (index (tenant_id, files)), so a download can
find the records that hold a file and check that the caller sees one of them.
An attachment value is a list of {id, name, size, content_type}; sub-table
rows hold them too, so the data is walked rather than read field by field.

`StoredFile` is the metadata of one uploaded file (store/attachments.py keeps
the bytes in GridFS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from record_service.domain.times import iso


@dataclass(frozen=True)
class StoredFile:
    """The metadata of one stored file."""

    id: str
    tenant_id: str
    name: str
    size: int
    content_type: str
    sha256: str
    uploaded_by: str
    uploaded_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """What a record's attachment field stores: {id, name, size, content_type}."""
        return {"id": self.id, "name": self.name, "size": self.size, "content_type": self.content_type}

    def to_json(self) -> dict[str, Any]:
        """The API form (UploadAttachment, the first DownloadAttachment message)."""
        return {
            **self.summary(),
            "filename": self.name,
            "sha256": self.sha256,
            "uploaded_by": self.uploaded_by,
            "uploaded_at": iso(self.uploaded_at),
        }


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
