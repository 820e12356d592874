"""The application service: recording touchpoints and stage changes on relationships,
one transaction per batch, on eventsourcing's ``Application``."""
