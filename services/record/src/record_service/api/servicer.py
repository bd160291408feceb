"""RecordServicer: the RecordService RPCs, mapping JSON text to RecordService calls and back.

Domain errors pass through untouched: crm_runtime's server interceptor turns
them into gRPC status codes with a JSON problem. Sharing and ExplainAccess are
RecordService use cases too. The 360° view, duplicates,
merge and attachments come from an optional `extras` object: when given, its
methods of the same names serve those RPCs (called as `extras.GetRecord360(request,
context)`), otherwise they answer UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import grpc

from crm.record.v1 import record_pb2, record_pb2_grpc
from crm_runtime.principal import current_principal
from record_service.api.codec import dumps, loads, parse_object
from record_service.domain.service import COUNT_CAPPED, COUNT_EXACT, COUNT_NONE, RecordService

SERVICE_NAME = record_pb2.DESCRIPTOR.services_by_name["RecordService"].full_name
EXTRA_RPCS = ("GetRecord360", "FindDuplicates", "MergeRecords", "UploadAttachment", "DownloadAttachment")
_SHARE_KINDS = {
    record_pb2.SHARE_TARGET_KIND_USER: "user",
    record_pb2.SHARE_TARGET_KIND_DEPARTMENT: "department",
}
_SHARE_ACCESS = {record_pb2.SHARE_ACCESS_READ: "read", record_pb2.SHARE_ACCESS_EDIT: "edit"}
_COUNT_MODES = {
    record_pb2.COUNT_MODE_UNSPECIFIED: COUNT_CAPPED,
    record_pb2.COUNT_MODE_CAPPED: COUNT_CAPPED,
    record_pb2.COUNT_MODE_EXACT: COUNT_EXACT,
    record_pb2.COUNT_MODE_NONE: COUNT_NONE,
}


class RecordServicer(record_pb2_grpc.RecordServiceServicer):
    """Implements crm.record.v1.RecordService over a RecordService (+ optional extras)."""

    def __init__(self, service: RecordService, extras: Any = None) -> None:
        self.service = service
        self.extras = extras

    def register(self, server: grpc.Server) -> None:
        """Add this servicer to a gRPC server (for crm_runtime.build_server)."""
        record_pb2_grpc.add_RecordServiceServicer_to_server(self, server)

    def CreateRecord(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Create one record."""
        p = current_principal()
        data = parse_object(request.data_json, "data_json", p.locale)
        record = self.service.create(p, request.form_id, data, request.owner_id)
        return record_pb2.CreateRecordResponse(record_json=dumps(record))

    def BulkCreateRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Create up to 10,000 records, all or nothing."""
        p = current_principal()
        rows = loads(request.records_json, "records_json", p.locale, default=[])
        ids = self.service.bulk_create(p, request.form_id, rows)
        return record_pb2.BulkCreateRecordsResponse(record_ids=ids)

    def GetRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One live record."""
        record = self.service.get(current_principal(), request.record_id)
        return record_pb2.GetRecordResponse(record_json=dumps(record))

    def UpdateRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Partial update with expected_version."""
        p = current_principal()
        data = parse_object(request.data_json, "data_json", p.locale)
        record = self.service.update(p, request.record_id, data, request.expected_version, request.owner_id)
        return record_pb2.UpdateRecordResponse(record_json=dumps(record))

    def DeleteRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Soft delete."""
        record = self.service.delete(current_principal(), request.record_id, request.expected_version)
        return record_pb2.DeleteRecordResponse(record_json=dumps(record))

    def RestoreRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Restore from the recycle bin."""
        record = self.service.restore(current_principal(), request.record_id)
        return record_pb2.RestoreRecordResponse(record_json=dumps(record))

    def ListRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A filtered, sorted page with a cursor and a count."""
        p = current_principal()
        page = self.service.list_records(
            p,
            request.form_id,
            tree=loads(request.filter_json, "filter_json", p.locale),
            sort=loads(request.sort_json, "sort_json", p.locale),
            cursor=request.cursor,
            page_size=request.page_size,
            count_mode=_COUNT_MODES.get(request.count_mode, COUNT_CAPPED),
            keyword=request.keyword,
            deleted=request.deleted,
        )
        return record_pb2.ListRecordsResponse(
            records_json=[dumps(r) for r in page.records],
            next_cursor=page.next_cursor,
            total=page.total,
            total_capped=page.total_capped,
        )

    def GetRecordHistory(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Who changed what, when, from what to what."""
        entries, cursor = self.service.history(
            current_principal(), request.record_id, request.cursor, request.page_size
        )
        return record_pb2.GetRecordHistoryResponse(entries_json=[dumps(e) for e in entries], next_cursor=cursor)

    def ShareRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Share a record with a user or a department, read or edit (default read)."""
        p = current_principal()
        kind = _SHARE_KINDS.get(request.target_kind, "")
        level = _SHARE_ACCESS.get(request.access, "read")
        record = self.service.share(p, request.record_id, kind, request.target_id, level)
        return record_pb2.ShareRecordResponse(record_json=dumps(record))

    def UnshareRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Remove a share."""
        p = current_principal()
        kind = _SHARE_KINDS.get(request.target_kind, "")
        record = self.service.unshare(p, request.record_id, kind, request.target_id)
        return record_pb2.UnshareRecordResponse(record_json=dumps(record))

    def ExplainAccess(self, request: Any, context: Any) -> Any:  # noqa: N802
        """May the caller do `action` on the form (or the record), and why."""
        p = current_principal()
        # neither form_id nor record_id: 422 naming form_id (RecordService.form)
        explanation = self.service.explain_access(p, request.form_id, request.record_id, request.action)
        return record_pb2.ExplainAccessResponse(
            allowed=bool(explanation["allowed"]), explanation_json=dumps(explanation)
        )

    def _extra(self, name: str, request: Any, context: Any) -> Any:
        handler = getattr(self.extras, name, None) if self.extras is not None else None
        if handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not available in this deployment")
            raise AssertionError("context.abort raises")
        return handler(request, context)

    def GetRecord360(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Served by extras."""
        return self._extra("GetRecord360", request, context)

    def FindDuplicates(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Served by extras."""
        return self._extra("FindDuplicates", request, context)

    def MergeRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Served by extras."""
        return self._extra("MergeRecords", request, context)

    def UploadAttachment(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Served by extras."""
        return self._extra("UploadAttachment", request, context)

    def DownloadAttachment(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Served by extras (a server stream)."""
        return self._extra("DownloadAttachment", request, context)
