"""How events become bytes: eventsourcing's JSON wire format, written by orjson.

Values JSON has no type for travel as ``{"_type_": name, "_data_": value}``, exactly as
the library's ``JSONTranscoder`` writes them, so stored events read the same with
either transcoder; orjson only makes the ingest path faster. (orjson writes a UUID
itself, as a plain string, which then reads back as a string: the engine's events hold
no UUIDs.)

A chained event (one with ``hash`` and ``previous_hash``, see ``lifecycle.domain.hashchain``)
is written as ``{"hash":…,"previous_hash":…,`` followed by its canonical body (the other
fields, keys sorted), so the stored bytes after that prefix are exactly what its hash
covers and verification needs no parsing. ``orjson_hasher`` is the fast hasher the
domain uses: it hashes byte for byte the reference encoding, and keeps each body it
hashed (keyed by the hash, so by content) for the transcoder, which stores those very
bytes instead of encoding the event a second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timezone
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Mapper,
    StoredEvent,
    Transcoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic

from lifecycle.domain.hashchain import CHAIN_FIELDS, HASH, PREVIOUS_HASH, canonical_body

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class SetAsList(Transcoding):
    """Snapshots hold sets (purchase days, resolved complaints)."""

    type = set
    name = "set"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> set[Any]:
        return set(data)


class OrjsonTranscoder(Transcoder):
    def __init__(self) -> None:
        self.types: dict[type, Transcoding] = {}
        self.names: dict[str, Transcoding] = {}
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), SetAsList()):
            self.register(transcoding)

    def register(self, transcoding: Transcoding) -> None:
        self.types[transcoding.type] = transcoding
        self.names[transcoding.name] = transcoding

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and type(obj.get(HASH)) is str and PREVIOUS_HASH in obj:
            return self._encode_chained(obj)
        return orjson.dumps(obj, default=self._encode_obj, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def _encode_chained(self, state: dict[str, Any]) -> bytes:
        chain_hash = state[HASH]
        body = _HASHED_BODIES.pop(chain_hash, None)
        if body is None:  # hashed elsewhere: encode it the same canonical way
            fields = {key: value for key, value in state.items() if key not in CHAIN_FIELDS}
            body = orjson.dumps(fields, default=self._encode_obj, option=_SORTED)
        return _chained(chain_hash, state[PREVIOUS_HASH], body)

    def decode(self, data: bytes) -> Any:
        # Every event holds a typed value (its timestamp): walk without looking first.
        return self._decode_value(orjson.loads(data))

    def _encode_obj(self, obj: Any) -> dict[str, Any]:
        if type(obj) is datetime:  # most common by far: spare the lookup
            return {"_type_": "datetime_iso", "_data_": obj.isoformat()}
        transcoding = self.types.get(type(obj))
        if transcoding is None:
            msg = f"Object of type {type(obj)} is not serializable: register a transcoding"
            raise TranscodingNotRegisteredError(msg)
        return {"_type_": transcoding.name, "_data_": transcoding.encode(obj)}

    def _decode_value(self, value: Any) -> Any:
        # The walk is on every read, so it rewrites containers in place (orjson made
        # them for this call alone), passes scalars over, and decodes a typed value
        # (a datetime, most often) without a call for the dict that holds it.
        if type(value) is dict:
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                return self._decode_typed(value["_type_"], value["_data_"])
            for key, item in value.items():
                kind = type(item)
                if kind is dict:
                    if len(item) == 2 and "_type_" in item and "_data_" in item:
                        name, data = item["_type_"], item["_data_"]
                        value[key] = (
                            datetime.fromisoformat(data)
                            if name == "datetime_iso"
                            else self._decode_typed(name, data)
                        )
                    else:
                        value[key] = self._decode_value(item)
                elif kind is list:
                    value[key] = self._decode_value(item)
        elif type(value) is list:
            for index, item in enumerate(value):
                if type(item) in _CONTAINERS:
                    value[index] = self._decode_value(item)
        return value

    def _decode_typed(self, name: str, data: Any) -> Any:
        if name == "datetime_iso":
            return datetime.fromisoformat(data)
        transcoding = self.names.get(name)
        if transcoding is None:
            msg = f"Data serialized as {name!r} has no registered transcoding"
            raise TranscodingNotRegisteredError(msg)
        if type(data) in _CONTAINERS:
            data = self._decode_value(data)
        return transcoding.decode(data)


_CONTAINERS = frozenset({dict, list})


def _chained(chain_hash: str, previous_hash: str, body: bytes) -> bytes:
    """The stored form of a chained event: its chain fields, then its hashed body."""
    return b"".join(
        (
            b'{"hash":',
            orjson.dumps(chain_hash),
            b',"previous_hash":',
            orjson.dumps(previous_hash),
            b",",
            body[1:],
        )
    )


class ChainedMapper(Mapper[UUID]):
    """The library's mapper, storing a chained event freshly hashed here as the body its
    hash covers, without copying the event's state or encoding it again (what
    ``OrjsonTranscoder`` writes for it, byte for byte)."""

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        state = vars(domain_event)
        chain_hash = state.get(HASH)
        plain = self.cipher is None and self.compressor is None
        body = _HASHED_BODIES.pop(chain_hash, None) if plain and type(chain_hash) is str else None
        if body is None:
            return super().to_stored_event(domain_event)
        return StoredEvent(
            originator_id=state["originator_id"],
            originator_version=state["originator_version"],
            topic=get_topic(type(domain_event)),
            state=_chained(str(chain_hash), state[PREVIOUS_HASH], body),
        )


_KIND_FIELD = b'"kind":"'


def stored_kinds(state: bytes) -> list[bytes]:
    """The values of every ``"kind"`` string field, at any depth, read from stored
    bytes without decoding them.

    Both this transcoder and the library's write compact JSON (``"kind":"purchase"``),
    so a stored touchpoint's kind (a plain name) is always among these; other fields of
    that name (in attributes) may be too. Empty means: not written that way, decode to
    know.
    """
    kinds = []
    found = state.find(_KIND_FIELD)
    while found >= 0:
        start = found + len(_KIND_FIELD)
        end = state.find(b'"', start)
        if end < 0:
            break
        kinds.append(state[start:end])
        found = state.find(_KIND_FIELD, end)
    return kinds


_HASHED_BODIES: dict[str, bytes] = {}
"""Bodies hashed and not stored yet, by hash. Events of a batch given up after a
conflict are never stored: the dict is emptied when it grows past a bound."""
_MAX_HASHED_BODIES = 200_000


def orjson_hasher(event_header: bytes, state: Mapping[str, Any]) -> str:
    """``lifecycle.domain.hashchain.reference_hasher``, several times faster."""
    body = _orjson_body(state)
    digest = hashlib.sha256(event_header)
    if body is None:
        # Stored as orjson writes it, which then differs from what was hashed:
        # verification takes its slower path for this event.
        digest.update(_reference_body(state))
        return digest.hexdigest()
    digest.update(body)
    chain_hash = digest.hexdigest()
    if len(_HASHED_BODIES) >= _MAX_HASHED_BODIES:
        _HASHED_BODIES.clear()
    _HASHED_BODIES[chain_hash] = body
    return chain_hash


def orjson_canonical_body(state: Mapping[str, Any]) -> bytes:
    """``lifecycle.domain.hashchain.canonical_body`` of the state without its chain fields,
    byte for byte, several times faster.

    orjson writes the reference encoder's bytes for strings, integers, booleans, null,
    arrays and objects (keys sorted the same way), and a datetime as its ``isoformat()``
    when the UTC offset is whole minutes (``_canonical_datetime``). It spells many
    floats differently (``1e-05`` against ``0.00001``): anything else goes to the
    reference encoder.
    """
    body = _orjson_body(state)
    return body if body is not None else _reference_body(state)


def _orjson_body(state: Mapping[str, Any]) -> bytes | None:
    """The canonical body by orjson, or None where orjson would not write it exactly."""
    for value in state.values():
        kind = type(value)
        if kind in _PLAIN or kind is datetime:
            continue
        if (kind is dict or kind is list) and _plain_json(value):
            continue
        return None
    if HASH in state or PREVIOUS_HASH in state:
        state = {key: value for key, value in state.items() if key not in CHAIN_FIELDS}
    try:
        # Written as it is, without a copy: only datetimes reach _canonical_datetime.
        return orjson.dumps(state, default=_canonical_datetime, option=_SORTED)
    except orjson.JSONEncodeError:
        return None


def _canonical_datetime(value: datetime) -> dict[str, str] | orjson.Fragment:
    """A datetime as the reference encoder writes it (``encode_datetime``); an offset
    with seconds is refused, so that the reference encoder writes that body.

    With a time zone of the standard library's (every recorded time, and every
    ``occurred_at``: the message gate gives them one), orjson's own datetime writes
    ``isoformat()``'s very characters, several times faster than ``isoformat()`` and
    the object around it (4 µs an event against 1 µs): the object is spliced in ready-
    made, its keys already in order."""
    zone = value.tzinfo
    if zone is not UTC:
        offset = value.utcoffset()
        if offset is not None and (offset.seconds % 60 or offset.microseconds):
            raise TypeError("a UTC offset with seconds")
        if type(zone) is not timezone:
            return {"_data_": value.isoformat(), "_type_": "datetime_iso"}
    return orjson.Fragment(_DATETIME_OPENS + orjson.dumps(value) + _DATETIME_CLOSES)


_DATETIME_OPENS = b'{"_data_":'
_DATETIME_CLOSES = b',"_type_":"datetime_iso"}'


def _reference_body(state: Mapping[str, Any]) -> bytes:
    return canonical_body({key: value for key, value in state.items() if key not in CHAIN_FIELDS})


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain_json(value: Any) -> bool:
    """Only strings, integers, booleans, null, objects and arrays, all the way down."""
    items = value.values() if type(value) is dict else value
    for item in items:
        kind = type(item)
        if kind in _PLAIN:
            continue
        if (kind is dict or kind is list) and _plain_json(item):
            continue
        return False
    return True


__all__ = [
    "ChainedMapper",
    "OrjsonTranscoder",
    "SetAsList",
    "orjson_canonical_body",
    "orjson_hasher",
]
