"""Pure domain of the record service: forms as seen by records, queries, scope, the record use cases."""
