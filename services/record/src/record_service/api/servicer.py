"""RecordServicer: every crm.record.v1.RecordService RPC, mapping requests to the domain's use cases and back.

Each method reads the principal from the call, decodes the `*_json` fields
(api/codec.py), calls one use case (domain/: records, bulk, listing, history,
sharing, view360, duplicates, merge, attachments) and encodes the result.
Domain errors pass through untouched: crm_runtime's server interceptor turns
them into gRPC status codes with a JSON problem, once, by class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from crm.record.v1 import record_pb2, record_pb2_grpc
from crm_runtime.principal import current_principal
from record_service.api.codec import dumps, loads, parse_object
from record_service.domain.attachments import Uploads
from record_service.domain.bulk import BulkCreate
from record_service.domain.duplicates import DuplicateFinder
from record_service.domain.history import History
from record_service.domain.listing import Listing
from record_service.domain.merge import RecordMerger
from record_service.domain.query import COUNT_CAPPED, COUNT_EXACT, COUNT_NONE
from record_service.domain.records import Records
from record_service.domain.sharing import Sharing
from record_service.domain.view360 import Record360

SERVICE_NAME = record_pb2.DESCRIPTOR.services_by_name["RecordService"].full_name
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


@dataclass(frozen=True)
class UseCases:
    """The record use cases the servicer serves (built in server.py)."""

    records: Records
    bulk: BulkCreate
    listing: Listing
    history: History
    sharing: Sharing
    view360: Record360
    duplicates: DuplicateFinder
    merge: RecordMerger
    attachments: Uploads


class RecordServicer(record_pb2_grpc.RecordServiceServicer):
    """Implements crm.record.v1.RecordService over the record use cases."""

    def __init__(self, use_cases: UseCases) -> None:
        self.uc = use_cases

    def register(self, server: grpc.Server) -> None:
        """Add this servicer to a gRPC server (for crm_runtime.build_server)."""
        record_pb2_grpc.add_RecordServiceServicer_to_server(self, server)

    def MoveToPool(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Return a record to a public pool (its owner, an admin, or the workflow recycling it)."""
        p = current_principal()
        data = loads(request.data_json, "data_json", p.locale, default={})
        record = self.uc.records.pool.move(p, request.record_id, request.pool_id, request.reason, data or {})
        return record_pb2.MoveToPoolResponse(record_json=dumps(record))

    def ClaimFromPool(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A member claims a pool record."""
        record = self.uc.records.pool.claim(current_principal(), request.record_id)
        return record_pb2.ClaimFromPoolResponse(record_json=dumps(record))

    def AssignFromPool(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A pool admin gives a pool record to a user."""
        record = self.uc.records.pool.assign(current_principal(), request.record_id, request.owner_id)
        return record_pb2.AssignFromPoolResponse(record_json=dumps(record))

    def SetRecordLock(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Lock a record for an approval (services only)."""
        p = current_principal()
        lock = parse_object(request.lock_json, "lock_json", p.locale)
        done = self.uc.records.gate.lock(p, request.record_id, lock)
        return record_pb2.SetRecordLockResponse(lock_json=dumps(done["lock"]))

    def ClearRecordLock(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Clear an approval's lock (services only)."""
        self.uc.records.gate.unlock(current_principal(), request.record_id, request.lock_id)
        return record_pb2.ClearRecordLockResponse()

    def SetFieldGuards(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Replace one owner's change guards on a form (services only)."""
        p = current_principal()
        guards = loads(request.guards_json, "guards_json", p.locale, default=[])
        count = self.uc.records.gate.set_guards(p, request.form_id, request.owner, guards)
        return record_pb2.SetFieldGuardsResponse(count=count)

    def ResolveHeldChange(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Apply or drop a held change (services only)."""
        p = current_principal()
        record = self.uc.records.gate.resolve(
            p, self.uc.records, request.record_id, request.change_id, request.approve, request.reason
        )
        return record_pb2.ResolveHeldChangeResponse(record_json=dumps(record))

    def CreateRecord(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Create one record."""
        p = current_principal()
        data = parse_object(request.data_json, "data_json", p.locale)
        record = self.uc.records.create(p, request.form_id, data, request.owner_id, request.idempotency_key)
        return record_pb2.CreateRecordResponse(record_json=dumps(record))

    def BulkCreateRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Create up to 10,000 records, all or nothing."""
        p = current_principal()
        rows = loads(request.records_json, "records_json", p.locale, default=[])
        ids = self.uc.bulk.create(p, request.form_id, rows)
        return record_pb2.BulkCreateRecordsResponse(record_ids=ids)

    def GetRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One live record."""
        record = self.uc.records.get(current_principal(), request.record_id)
        return record_pb2.GetRecordResponse(record_json=dumps(record))

    def UpdateRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Partial update with expected_version."""
        p = current_principal()
        data = parse_object(request.data_json, "data_json", p.locale)
        record = self.uc.records.update(p, request.record_id, data, request.expected_version, request.owner_id)
        return record_pb2.UpdateRecordResponse(record_json=dumps(record))

    def DeleteRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Soft delete."""
        record = self.uc.records.delete(current_principal(), request.record_id, request.expected_version)
        return record_pb2.DeleteRecordResponse(record_json=dumps(record))

    def RestoreRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Restore from the recycle bin."""
        record = self.uc.records.restore(current_principal(), request.record_id)
        return record_pb2.RestoreRecordResponse(record_json=dumps(record))

    def ListRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A filtered, sorted page with a cursor and a count."""
        p = current_principal()
        page = self.uc.listing.list_records(
            p,
            request.form_id,
            tree=loads(request.filter_json, "filter_json", p.locale),
            sort=loads(request.sort_json, "sort_json", p.locale),
            cursor=request.cursor,
            page_size=request.page_size,
            count_mode=_COUNT_MODES.get(request.count_mode, COUNT_CAPPED),
            keyword=request.keyword,
            deleted=request.deleted,
            pool_id=request.pool_id,
            pool=self.uc.records.pool,
        )
        return record_pb2.ListRecordsResponse(
            records_json=[dumps(r) for r in page.records],
            next_cursor=page.next_cursor,
            total=page.total,
            total_capped=page.total_capped,
        )

    def GetRecordHistory(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Who changed what, when, from what to what."""
        entries, cursor = self.uc.history.page(
            current_principal(), request.record_id, request.cursor, request.page_size
        )
        return record_pb2.GetRecordHistoryResponse(entries_json=[dumps(e) for e in entries], next_cursor=cursor)

    def ShareRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Share a record with a user or a department, read or edit (default read)."""
        p = current_principal()
        kind = _SHARE_KINDS.get(request.target_kind, "")
        level = _SHARE_ACCESS.get(request.access, "read")
        record = self.uc.sharing.share(p, request.record_id, kind, request.target_id, level)
        return record_pb2.ShareRecordResponse(record_json=dumps(record))

    def UnshareRecord(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Remove a share."""
        p = current_principal()
        kind = _SHARE_KINDS.get(request.target_kind, "")
        record = self.uc.sharing.unshare(p, request.record_id, kind, request.target_id)
        return record_pb2.UnshareRecordResponse(record_json=dumps(record))

    def ExplainAccess(self, request: Any, context: Any) -> Any:  # noqa: N802
        """May the caller do `action` on the form (or the record), and why."""
        p = current_principal()
        # neither form_id nor record_id: 422 naming form_id (RecordCore.form)
        explanation = self.uc.records.explain_access(p, request.form_id, request.record_id, request.action)
        return record_pb2.ExplainAccessResponse(
            allowed=bool(explanation["allowed"]), explanation_json=dumps(explanation)
        )

    def GetRecord360(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The record, its related records by form (two levels) and the timeline."""
        view = self.uc.view360.view(current_principal(), request.record_id, request.per_form_limit)
        return record_pb2.GetRecord360Response(view_json=dumps(view))

    def FindDuplicates(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Duplicate candidates of a stored record or of unsaved data."""
        p = current_principal()
        data = loads(request.data_json, "data_json", p.locale) if not request.record_id else None
        candidates = self.uc.duplicates.find(p, request.form_id, request.record_id, data, request.limit)
        return record_pb2.FindDuplicatesResponse(candidates_json=[dumps(c) for c in candidates])

    def MergeRecords(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Merge the loser into the winner."""
        p = current_principal()
        choices = loads(request.field_choices_json, "field_choices_json", p.locale, default={})
        record = self.uc.merge.merge(p, request.winner_id, request.loser_id, choices)
        return record_pb2.MergeRecordsResponse(record_json=dumps(record))

    def UploadAttachment(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Store a file (checked against the global and the field's limits)."""
        stored = self.uc.attachments.upload(
            current_principal(),
            request.filename,
            request.content_type,
            request.content,
            request.form_id,
            request.field_key,
        )
        return record_pb2.UploadAttachmentResponse(attachment_json=dumps(stored.to_json()))

    def DownloadAttachment(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        """Stream a file (a server stream): the first message carries the metadata (and the first chunk)."""
        stored, chunks = self.uc.attachments.open(current_principal(), request.attachment_id)
        first = next(chunks, b"")
        yield record_pb2.DownloadAttachmentResponse(attachment_json=dumps(stored.to_json()), chunk=first)
        for chunk in chunks:
            yield record_pb2.DownloadAttachmentResponse(chunk=chunk)
