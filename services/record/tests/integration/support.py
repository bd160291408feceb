"""Shared helpers of the record service's integration tests (imported by conftest and test modules)."""

from __future__ import annotations

import json
from typing import Any

from crm.record.v1 import record_pb2
from crm_runtime.principal import Principal


class Api:
    """Calls RecordService as one principal; record JSON parsed."""

    def __init__(self, stub: Any, principal: Principal) -> None:
        self.stub = stub
        self.principal = principal

    def call(self, method: str, **fields: Any) -> Any:
        request = getattr(record_pb2, method + "Request")(**fields)
        return getattr(self.stub, method)(request, metadata=self.principal.to_metadata(), timeout=60)

    def create(self, form: str, data: dict[str, Any], owner_id: str = "") -> dict[str, Any]:
        resp = self.call(
            "CreateRecord", form_id=form, data_json=json.dumps(data, ensure_ascii=False), owner_id=owner_id
        )
        return json.loads(resp.record_json)

    def get(self, record_id: str) -> dict[str, Any]:
        return json.loads(self.call("GetRecord", record_id=record_id).record_json)

    def update(self, record_id: str, data: dict[str, Any], version: int, owner_id: str = "") -> dict[str, Any]:
        resp = self.call(
            "UpdateRecord",
            record_id=record_id,
            data_json=json.dumps(data, ensure_ascii=False),
            expected_version=version,
            owner_id=owner_id,
        )
        return json.loads(resp.record_json)

    def list(self, form: str, **kw: Any) -> tuple[list[dict[str, Any]], Any]:
        for key in ("filter_json", "sort_json"):
            if key in kw and not isinstance(kw[key], str):
                kw[key] = json.dumps(kw[key], ensure_ascii=False)
        resp = self.call("ListRecords", form_id=form, **kw)
        return [json.loads(r) for r in resp.records_json], resp

    def history(self, record_id: str, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        resp = self.call("GetRecordHistory", record_id=record_id, **kw)
        return [json.loads(e) for e in resp.entries_json], resp.next_cursor
