"""Read side: projections of the event log, and the HTTP read API."""
