"""The record service's store: pymongo over MongoDB/SecantusDB (collections records, history, uniques, counters)."""
