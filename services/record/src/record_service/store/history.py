"""MongoHistoryReader: the history of many records at once (the 360° timeline), the domain's HistoryReader.

RecordRepository.history_page reads one record's history; a timeline over a
customer's related records would make one query per record. This reads them
in chunks of 200 ids through the (tenant_id, record_id, at) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from record_service.events import entries_of

Doc = dict[str, Any]
IN_CHUNK = 200  # `$in` is quadratic on SecantusDB beyond a few hundred values


class MongoHistoryReader:
    """HistoryReader over the record service's `history` collection."""

    def __init__(self, db: Database[Any]) -> None:
        self._history = db["history"]

    def recent(self, tenant_id: str, record_ids: Sequence[str], limit: int) -> list[Doc]:
        """See HistoryReader; one query per chunk, each sorted and limited by the store (in memory there)."""
        ids = list(dict.fromkeys(record_ids))
        rows: list[Doc] = []
        for start in range(0, len(ids), IN_CHUNK):
            predicate = {"tenant_id": tenant_id, "record_id": {"$in": ids[start : start + IN_CHUNK]}}
            cursor = self._history.find(predicate, {"event": 0}).sort([("at", DESCENDING), ("_id", DESCENDING)])
            rows += [e for doc in cursor.limit(limit) for e in entries_of(doc, ids)]
        rows.sort(key=lambda r: (r["at"], r["_id"]), reverse=True)
        return rows[:limit]
