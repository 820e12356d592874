"""Persistence adapters: the database URL (``store``), the event recorders, the
transcoder, the per-customer key store, the topics events were stored under, and the
one module holding the eventsourcing library's private API (``library``)."""
