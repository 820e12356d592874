"""Event-sourced customer relationship-lifecycle engine.

The folders are the layers, each importing only those listed after it:

- ``entrypoints/``: the ``lifecycle`` command and the composition root
  (``entrypoints/bootstrap.py``), the only place that wires components from settings
  and the only part of this package that imports ``consumers`` or ``projections``;
- ``audit/``: the tamper-evident ledger, verification, history and exports;
- ``service/``: the application service recording touchpoints, and the importer;
- ``persistence/``: the database URL, recorders, transcoder, key store and the one
  door to the eventsourcing library's private API;
- ``domain/``: stages, touchpoints, messages, the policy and its stream in the log, the
  ``Relationship`` aggregate and its hash chain, the what-if replay; the standard
  library, pydantic and ``eventsourcing.domain`` only.

``settings``, ``logs`` and ``simulation`` are shared by every layer's processes.
"""
