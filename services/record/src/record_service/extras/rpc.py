"""Extras: the GetRecord360, FindDuplicates, MergeRecords, UploadAttachment and DownloadAttachment RPCs.

RecordServicer forwards these five RPCs to `extras.<Name>(request, context)`.
Each method reads the principal from the call, maps the request to a use case
(related.py, duplicates.py, merge.py, uploads.py) and the result to the
response; domain errors pass through to crm_runtime's interceptor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo.database import Database

from crm.record.v1 import record_pb2
from crm_runtime.principal import current_principal
from record_service.api.codec import dumps, loads
from record_service.domain.service import RecordService
from record_service.extras.attachments import AttachmentStore
from record_service.extras.catalog import FormCatalog
from record_service.extras.duplicates import DuplicateFinder
from record_service.extras.history import HistoryReader, MongoHistoryReader
from record_service.extras.merge import RecordMerger
from record_service.extras.related import Record360
from record_service.extras.uploads import MAX_UPLOAD_BYTES, Uploads


class Extras:
    """The extra RecordService RPCs over a RecordService, a form catalog, history and the attachment store."""

    def __init__(
        self,
        service: RecordService,
        *,
        catalog: FormCatalog,
        history: HistoryReader,
        attachments: AttachmentStore,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self.service = service
        self.attachments = attachments
        self.view360 = Record360(service, catalog, history)
        self.duplicates = DuplicateFinder(service)
        self.merger = RecordMerger(service, catalog)
        self.uploads = Uploads(service, attachments, max_bytes=max_upload_bytes)

    @classmethod
    def build(
        cls,
        service: RecordService,
        db: Database[Any],
        *,
        catalog: FormCatalog,
        attachments: AttachmentStore | None = None,
    ) -> Extras:
        """The production wiring over the record database (history collection, `attachments` GridFS bucket)."""
        return cls(
            service,
            catalog=catalog,
            history=MongoHistoryReader(db),
            attachments=attachments or AttachmentStore(db),
        )

    def GetRecord360(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """The record, its related records by form (two levels) and the timeline."""
        view = self.view360.view(current_principal(), request.record_id, request.per_form_limit)
        return record_pb2.GetRecord360Response(view_json=dumps(view))

    def FindDuplicates(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Duplicate candidates of a stored record or of unsaved data."""
        p = current_principal()
        data = loads(request.data_json, "data_json", p.locale) if not request.record_id else None
        candidates = self.duplicates.find(p, request.form_id, request.record_id, data, request.limit)
        return record_pb2.FindDuplicatesResponse(candidates_json=[dumps(c) for c in candidates])

    def MergeRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Merge the loser into the winner."""
        p = current_principal()
        choices = loads(request.field_choices_json, "field_choices_json", p.locale, default={})
        record = self.merger.merge(p, request.winner_id, request.loser_id, choices)
        return record_pb2.MergeRecordsResponse(record_json=dumps(record))

    def UploadAttachment(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Store a file (checked against the global and the field's limits)."""
        stored = self.uploads.upload(
            current_principal(),
            request.filename,
            request.content_type,
            request.content,
            request.form_id,
            request.field_key,
        )
        return record_pb2.UploadAttachmentResponse(attachment_json=dumps(stored.to_json()))

    def DownloadAttachment(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        """Stream a file: the first message carries the metadata (and the first chunk)."""
        stored, chunks = self.uploads.open(current_principal(), request.attachment_id)
        first = next(chunks, b"")
        yield record_pb2.DownloadAttachmentResponse(attachment_json=dumps(stored.to_json()), chunk=first)
        for chunk in chunks:
            yield record_pb2.DownloadAttachmentResponse(chunk=chunk)

    def attachment_lookup(self, tenant_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The AttachmentLookup for record validation (see domain/repository.py)."""
        return self.attachments.lookup(tenant_id, ids)
