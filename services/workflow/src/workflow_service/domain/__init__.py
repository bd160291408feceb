"""The workflow domain: automations, their conditions and rules (pure Python: no store, no grpc)."""
