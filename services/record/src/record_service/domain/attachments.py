"""UploadAttachment and DownloadAttachment: the global and per-field limits, the magic-bytes check, who may read.

The bytes live in a FileStore (store/attachments.py: GridFS); the content is
checked against its claimed type by domain/filetypes.py; a file is read only by
someone who sees a record holding it (or, before any record does, its uploader).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import crm_schema
from crm_runtime.errors import FieldError, ValidationFailed
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import RecordCore
from record_service.domain.files import StoredFile
from record_service.domain.filetypes import accepts, contradicts, effective_type, sniff
from record_service.domain.repository import FileStore

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
FILE_FIELD_TYPES = ("attachment", "image")


class Uploads:
    """Checks a file against the limits, then stores it; streams files back to their tenant only."""

    def __init__(self, core: RecordCore, store: FileStore, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self._core = core
        self._store = store
        self._max = max_bytes

    def upload(
        self,
        principal: Principal,
        filename: str,
        content_type: str,
        content: bytes,
        form_ref: str = "",
        field_key: str = "",
    ) -> StoredFile:
        """Store one file; 413 over a size limit, 422 for a refused or lying type."""
        loc = principal.locale
        name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not name:
            raise rerr.invalid("filename", "required", loc)
        if not content:
            raise rerr.invalid("content", "file_required", loc)
        size = len(content)
        if size > self._max:
            text = rerr.message("file_too_large_global", loc, name=name, max_mb=self._max // (1024 * 1024))
            raise rerr.too_large("content", text, self._max, size)
        detected = sniff(content)
        media_type = effective_type(content_type, name, detected)
        if contradicts(media_type, name, detected):
            raise rerr.invalid(
                "content",
                "content_mismatch",
                loc,
                name=name,
                content_type=media_type,
                detected=detected or "unknown",
            )
        if form_ref or field_key:
            self._check_field(principal, form_ref, field_key, name, media_type, size)
        return self._store.put(principal.tenant_id, principal.user_id, name, media_type, content)

    def _check_field(
        self, principal: Principal, form_ref: str, field_key: str, name: str, media_type: str, size: int
    ) -> None:
        loc = principal.locale
        if not form_ref:
            raise rerr.invalid("form_id", "required", loc)
        form = self._core.form(principal, form_ref)
        field = form.field(field_key) if field_key else None
        if field is None or field.get("type") not in FILE_FIELD_TYPES:
            raise rerr.invalid("field_key", "not_attachment_field", loc, field=field_key)
        label: Any = field.get("label") or field_key
        max_size = field.get("max_size")
        if isinstance(max_size, int) and not isinstance(max_size, bool) and size > max_size:
            text = crm_schema.message("file_too_large", loc, label=label, name=name, max_size=max_size, size=size)
            raise rerr.too_large(field_key, text, max_size, size)
        accept = field.get("accept")
        if accept is None and field.get("type") == "image":
            accept = ["image/*"]
        if isinstance(accept, list) and accept and not accepts(accept, media_type, name):
            params = {"name": name, "content_type": media_type, "accept": accept}
            text = crm_schema.message("file_type", loc, label=label, **params)
            raise ValidationFailed([FieldError(field_key, "file_type", text, params)])

    def open(self, principal: Principal, file_id: str) -> tuple[StoredFile, Iterator[bytes]]:
        """The file's metadata and its chunks, for a caller who may see it; else 404.

        The caller must see a record (live or in the recycle bin) that holds the
        file in a field not hidden from them, or, for a file no record holds
        yet, be its uploader. Another tenant's file does not exist.
        """
        stored = self._store.get(principal.tenant_id, file_id)
        if stored is None or not self._core.may_read_file(principal, stored.id, stored.uploaded_by):
            raise rerr.attachment_not_found(file_id, principal.locale)
        return stored, self._store.chunks(stored.id)
