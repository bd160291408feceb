"""The gRPC side of the record service."""
