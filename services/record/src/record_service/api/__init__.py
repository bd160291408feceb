"""The gRPC side of the record service: one servicer for every RPC (servicer.py), JSON text codec (codec.py)."""
