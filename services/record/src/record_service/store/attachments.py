"""AttachmentStore: files in GridFS on the record service's own database, tenant-checked on every read.

Files live in the `attachments` bucket (`attachments.files`, `attachments.chunks`)
with string ids and metadata {tenant_id, uploaded_by, name, size, content_type,
sha256}. Reads go by `_id` (the `_id` index) and the tenant is checked in code,
so no query needs a (metadata.tenant_id, _id) index; another tenant's id reads
as "no such file".
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gridfs
from pymongo.database import Database

from record_service.domain.core import new_record_id
from record_service.domain.files import StoredFile

Doc = dict[str, Any]
IN_CHUNK = 200
BUCKET = "attachments"
CHUNK_BYTES = 255 * 1024


def stored_file(doc: Doc) -> StoredFile:
    """The domain's StoredFile of an `attachments.files` document."""
    meta = doc.get("metadata") or {}
    return StoredFile(
        id=str(doc["_id"]),
        tenant_id=str(meta.get("tenant_id") or ""),
        name=str(meta.get("name") or doc.get("filename") or ""),
        size=int(meta.get("size") or doc.get("length") or 0),
        content_type=str(meta.get("content_type") or "application/octet-stream"),
        sha256=str(meta.get("sha256") or ""),
        uploaded_by=str(meta.get("uploaded_by") or ""),
        uploaded_at=doc.get("uploadDate"),
    )


class AttachmentStore:
    """The domain's FileStore: put, look up and stream files of a tenant."""

    def __init__(self, db: Database[Any], *, bucket: str = BUCKET, new_id: Callable[[], str] = new_record_id) -> None:
        self._bucket = gridfs.GridFSBucket(db, bucket_name=bucket, chunk_size_bytes=CHUNK_BYTES)
        self._files = db[f"{bucket}.files"]
        self._new_id = new_id

    def put(self, tenant_id: str, uploaded_by: str, name: str, content_type: str, content: bytes) -> StoredFile:
        """Store the bytes; returns the stored metadata."""
        file_id = self._new_id()
        metadata = {
            "tenant_id": tenant_id,
            "uploaded_by": uploaded_by,
            "name": name,
            "size": len(content),
            "content_type": content_type,
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        self._bucket.upload_from_stream_with_id(file_id, name, io.BytesIO(content), metadata=metadata)
        doc = self._files.find_one({"_id": file_id})
        return stored_file(doc or {"_id": file_id, "metadata": metadata})

    def get(self, tenant_id: str, file_id: str) -> StoredFile | None:
        """The file's metadata when it exists in this tenant."""
        doc = self._files.find_one({"_id": file_id}) if file_id else None
        if doc is None or (doc.get("metadata") or {}).get("tenant_id") != tenant_id:
            return None
        return stored_file(doc)

    def chunks(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, one GridFS chunk at a time (check the tenant with `get` first)."""
        stream = self._bucket.open_download_stream(file_id)
        try:
            while True:
                chunk = stream.readchunk()
                if not chunk:
                    return
                yield chunk
        finally:
            stream.close()

    def lookup(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        """The AttachmentLookup of record validation: {id: {id, name, size, content_type, uploaded_by}}
        for this tenant's ids (RecordContext drops `uploaded_by` before the value is stored)."""
        wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        out: dict[str, Doc] = {}
        for start in range(0, len(wanted), IN_CHUNK):
            for doc in self._files.find(
                {"_id": {"$in": wanted[start : start + IN_CHUNK]}}, {"metadata": 1, "length": 1}
            ):
                if (doc.get("metadata") or {}).get("tenant_id") == tenant_id:
                    stored = stored_file(doc)
                    out[stored.id] = {**stored.summary(), "uploaded_by": stored.uploaded_by}
        return out
