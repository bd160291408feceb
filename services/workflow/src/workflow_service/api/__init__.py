"""The gRPC face of the workflow service."""
