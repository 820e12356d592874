"""Event-sourced customer relationship-lifecycle engine: the write side.

The domain (stages, touchpoints, policy, the ``Relationship`` aggregate) imports only
the standard library and pydantic; the application service records touchpoints with
the eventsourcing library. Infrastructure lives in ``consumers`` and ``projections``.
"""
