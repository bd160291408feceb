"""The gRPC face of the form service: a thin servicer over FormEngine."""
