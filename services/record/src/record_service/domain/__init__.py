"""Pure domain of the record service: the use cases by concept, over ports the store and the form client implement.

Where to look:

    records.py     create, get, update, delete, restore, explain access — where a record is validated
    bulk.py        bulk create: validation of every row, chunked writes, compensation
    listing.py     ListRecords: the caller's page and count (query.py parses, the RecordQueries port reads)
    history.py     one record's audit trail
    sharing.py     sharing a record with a user or a department
    rendering.py   stored record -> API JSON: relations, lookups, rollups, retired values, hidden fields
    merge.py       merging a duplicate into the record that stays
    duplicates.py  duplicate candidates
    view360.py     the 360° view: related records (two levels) and a timeline
    attachments.py upload and download (filetypes.py: the magic-bytes check; files.py: which files a record holds)
    core.py        what the use cases share: forms, access checks, loading, writing, the stored shape
    access.py      the caller's access to a form's records (over crm_runtime.access)
    context.py     crm_schema's validation context of one call
    query.py       the query language: filters, sorts, cursors, keyword parts
    forms.py       published forms, FormSource / FormCatalog, relations between forms
    directory.py   the users the service knows (owners, share targets)
    repository.py  the ports: RecordRepository, RecordQueries, HistoryReader, FileStore, Cipher
    errors.py      the error tree and the zh-CN/en messages
    times.py       UTC times as stored and shown

Nothing here imports grpc, pymongo or pika, nor record_service.store/api/forms
(import-linter contracts in the root pyproject.toml); server.py wires it all.
"""
