"""The record service's store: pymongo over MongoDB/SecantusDB, implementing the domain's ports.

repository.py  RecordRepository: records, history (the outbox), uniques, counters
planner.py     RecordQueries: which condition the store runs, bounded windows, capped counts
indexes.py     the indexes every query path uses
history.py     HistoryReader: many records' history at once
attachments.py FileStore: files in GridFS
directory.py   the replica of the gateway's users
"""
