"""The record service's one client of the form service (grpc_source.py: over gRPC, cached) and its invalidation."""
