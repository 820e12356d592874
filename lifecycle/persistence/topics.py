"""The topics events are stored under, now and in earlier releases.

Every stored event and snapshot names its class by topic (``module:qualname``), and so
does the ``originator_topic`` a relationship's first event hashes. When a module that
defines stored classes moves, its former name stays registered with the library
(``eventsourcing.utils.register_topic``) so that old events and snapshots resolve, and
every query or filter by topic asks for every name the class has been stored under
(``stored_topics``). Stores are never rewritten: a log holds old and new topics side by
side. ``tests/integration/test_release_store.py`` opens a store of the release before
the move.
"""

from __future__ import annotations

import importlib

from eventsourcing.utils import get_topic, register_topic

FORMER_MODULES: dict[str, str] = {
    # release 0.1 (before the layers): module then -> module now
    "lifecycle.relationship": "lifecycle.domain.relationship",
}
"""Modules that held stored classes, by their former name. Never remove an entry."""


def register_former_topics() -> None:
    """Make every former module name resolve to the module that holds its classes now."""
    for former, current in FORMER_MODULES.items():
        register_topic(former, importlib.import_module(current))


def stored_topics(cls: type) -> tuple[str, ...]:
    """Every topic ``cls`` may be stored under: its topic now, then its former ones."""
    topic = get_topic(cls)
    module, _, qualname = topic.partition(":")
    former = tuple(f"{old}:{qualname}" for old, new in FORMER_MODULES.items() if new == module)
    return (topic, *former)


_CURRENT: dict[str, str] = {}


def current_topic(topic: str) -> str:
    """The topic now of a class stored under ``topic`` (itself when it has not moved)."""
    try:
        return _CURRENT[topic]
    except KeyError:
        module, _, qualname = topic.partition(":")
        _CURRENT[topic] = f"{FORMER_MODULES.get(module, module)}:{qualname}"
        return _CURRENT[topic]


register_former_topics()
