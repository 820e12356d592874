"""The hash chain of a relationship's events: what an event's hash covers, and how.

Every recorded event carries ``previous_hash`` (the hash of the event before it in the
same relationship; 64 zeros for the first) and ``hash``::

    hash = sha256(header + body)
    header = f"{previous_hash}\\n{relationship id as 32 hex digits}\\n{version}\\n{event type}\\n"
    body = the event's other fields as canonical JSON

The header binds the event to its place: moving it to another relationship, renumbering
it or changing its type changes its hash, as does any change before it in the chain.
The body is every field of the event's state except ``hash`` and ``previous_hash``
(``timestamp``, i.e. the recorded time, included) as compact JSON with keys sorted at
every level, UTF-8, non-ASCII characters unescaped, and each datetime written as
``{"_data_": value.isoformat(), "_type_": "datetime_iso"}``.

Why this form: it is the JSON the store keeps for the event. The application's
transcoder writes an event as ``{"hash":…,"previous_hash":…,`` followed by exactly this
body, so verification hashes the stored bytes as they are, without parsing them, at
well over 100,000 events a second; an exported event is rebuilt into the same body from
its Contract 3 line. ``canonical_body`` is the reference encoder (standard library).
A faster hasher may be installed with ``install_hasher`` provided it hashes the same
bytes; the application installs one built on orjson that does (falling back to the
reference for values orjson writes differently, floats) and hands the body it hashed to
the transcoder, which stores those very bytes.

This module is part of the domain: standard library only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64
"""The ``previous_hash`` of a relationship's first event."""

HASH = "hash"
PREVIOUS_HASH = "previous_hash"
CHAIN_FIELDS = frozenset({HASH, PREVIOUS_HASH})

Hasher = Callable[[bytes, Mapping[str, Any]], str]
"""(header, the event's state) -> the event's hash, hex. The body is the state without
its chain fields."""


def encode_datetime(value: Any) -> dict[str, str]:
    """How a datetime is written in a canonical body (the store's own JSON form)."""
    if isinstance(value, datetime):
        return {"_type_": "datetime_iso", "_data_": value.isoformat()}
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


_REFERENCE = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
    default=encode_datetime,
)


def canonical_body(fields: Mapping[str, Any]) -> bytes:
    """The reference encoding of an event's fields (chain fields already left out)."""
    return _REFERENCE.encode(fields).encode("utf-8")


def reference_hasher(event_header: bytes, state: Mapping[str, Any]) -> str:
    body = {key: value for key, value in state.items() if key not in CHAIN_FIELDS}
    digest = hashlib.sha256(event_header)
    digest.update(canonical_body(body))
    return digest.hexdigest()


_hasher: Hasher = reference_hasher


def install_hasher(hasher: Hasher) -> None:
    """Use a faster hasher that hashes exactly the bytes of ``canonical_body``."""
    global _hasher
    _hasher = hasher


def header(previous_hash: str, originator_id: UUID | str, version: int, event_type: str) -> bytes:
    relationship = originator_id.hex if isinstance(originator_id, UUID) else originator_id
    return f"{previous_hash}\n{relationship}\n{version}\n{event_type}\n".encode()


def event_hash(
    event_type: str, originator_id: UUID | str, version: int, state: Mapping[str, Any]
) -> str:
    """The hash of an event with this state (``previous_hash`` included, ``hash`` not
    needed); ``originator_id`` is a UUID or its 32 hex digits."""
    return _hasher(header(state[PREVIOUS_HASH], originator_id, version, event_type), state)


def link_hash(
    previous_hash: str,
    event_type: str,
    originator_id: UUID | str,
    version: int,
    fields: Mapping[str, Any],
) -> str:
    """``event_hash`` of a new event, from its fields without the chain fields: the
    state need not be copied to leave them out."""
    return _hasher(header(previous_hash, originator_id, version, event_type), fields)


def reference_event_hash(
    event_type: str, originator_id: UUID | str, version: int, state: Mapping[str, Any]
) -> str:
    """``event_hash`` with the reference encoder, whatever hasher is installed."""
    return reference_hasher(header(state[PREVIOUS_HASH], originator_id, version, event_type), state)
