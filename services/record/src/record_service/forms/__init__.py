"""Where the record service gets published forms: the form service over gRPC, cached, invalidated by events."""
