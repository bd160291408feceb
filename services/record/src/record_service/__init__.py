"""The record service: validation against published forms, CRUD, query, history and the outbox."""
