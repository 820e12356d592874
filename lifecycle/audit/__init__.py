"""Audit: the tamper-evident ledger over the event log, verification, exports.

- ``chain``: hash-chain links checked from stored bytes; the global running hash.
- ``ledger``: signed blocks and checkpoints, stored apart from the events.
- ``sealing``: extend the ledger and sign a checkpoint (``seal``, ``PeriodicSealer``).
- ``verify``: recompute every chain and check every signature (``verify_store``).
- ``history``: a customer's events with positions, hashes and personal data revealed.
- ``export``: JSON lines of Contract 3 events plus a signed manifest; offline checks.

The hash of each event is defined by the domain (``lifecycle.domain.hashchain``) and
computed by the ``Relationship`` aggregate as events are recorded. The ledger and the
key are built by the composition root (``lifecycle.entrypoints.bootstrap``).
"""
