"""Cross-cutting pieces: errors, events and the outbox, dispatcher, real-time hub, tenancy."""
