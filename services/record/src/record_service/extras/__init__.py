"""The record service's extras: 360° view, duplicates, merge and attachments (the five "extra" RPCs).

Wiring (see server.py): `store = AttachmentStore(db)` gives the attachment
lookup for record validation (`store.lookup`); `Extras.build(service, db,
catalog=GrpcFormCatalog(form_addr, forms), attachments=store)` serves the RPCs.
"""

from record_service.extras.attachments import AttachmentStore, StoredFile
from record_service.extras.catalog import FormCatalog, GrpcFormCatalog, SourceCatalog, references_to
from record_service.extras.history import HistoryReader, MongoHistoryReader
from record_service.extras.rpc import Extras

__all__ = [
    "AttachmentStore",
    "Extras",
    "FormCatalog",
    "GrpcFormCatalog",
    "HistoryReader",
    "MongoHistoryReader",
    "SourceCatalog",
    "StoredFile",
    "references_to",
]
