"""Store adapters of the workflow service."""
