"""The library versions the contract tests (``test_library_contracts.py``, unit and
integration) were written against, as their failure messages name them."""

from __future__ import annotations

from importlib.metadata import version


def pinned(package: str, written_against: str) -> str:
    installed = version(package)
    if installed == written_against:
        return f"{package} {installed}"
    return f"{package} {installed} (contracts written against {written_against})"


EVENTSOURCING = pinned("eventsourcing", "9.5.6")
KAFKA = pinned("kafka-python", "3.0.12")
