"""Hash-chain links checked from stored bytes, without reviving domain types.

``lifecycle.domain.hashchain`` defines what an event's hash covers: a header (previous hash,
relationship id, version, event type) and the canonical body of the event's other
fields. The application stores an event as ``{"hash":"…","previous_hash":"…",``
followed by that body, so the check is one SHA-256 over the stored bytes. A stored
event in any other layout, or one whose bytes do not match on that fast path, is parsed
and its body rebuilt with the reference encoder before a mismatch is believed (an event
holding floats is hashed over the reference encoding, which orjson does not reproduce).

The global chain runs over the application's log order: ``head(p) = sha256(head(p-1) ||
position || event hash)``, starting from 32 zero bytes, so a deleted, inserted or moved
event changes every later head.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import orjson

from lifecycle.domain.hashchain import HASH, PREVIOUS_HASH, canonical_body, header

GLOBAL_GENESIS = bytes(32)

_PREFIX = b'{"hash":"'
_MIDDLE = b'","previous_hash":"'
_HASH_END = 9 + 64
_PREVIOUS_END = _HASH_END + len(_MIDDLE) + 64
_BODY_START = _PREVIOUS_END + 2  # after '",'

Checked = tuple[str | None, str | None, bool]
"""(hash the event carries, its previous_hash, whether its content hashes to it)"""

_EVENT_TYPES: dict[str, str] = {}


def event_type_of(topic: str) -> str:
    """The event's class name: ``module:Relationship.TouchpointRecorded`` ->
    ``TouchpointRecorded`` (whichever module it was stored under)."""
    event_type = _EVENT_TYPES.get(topic)
    if event_type is None:
        event_type = _EVENT_TYPES[topic] = topic.rpartition(":")[2].rpartition(".")[2]
    return event_type


def stored_chain_fields(state: bytes) -> tuple[str | None, str | None]:
    """The (hash, previous_hash) a stored event carries."""
    if _laid_out(state):
        return state[9:_HASH_END].decode(), state[_HASH_END + 19 : _PREVIOUS_END].decode()
    content = orjson.loads(state)
    chain_hash, previous = content.get(HASH), content.get(PREVIOUS_HASH)
    return (
        chain_hash if isinstance(chain_hash, str) else None,
        previous if isinstance(previous, str) else None,
    )


def _laid_out(state: bytes) -> bool:
    return (
        state[:9] == _PREFIX
        and state[_HASH_END : _HASH_END + 19] == _MIDDLE
        and state[_PREVIOUS_END:_BODY_START] == b'",'
    )


def check_rows(rows: Sequence[tuple[int, str, int, str, bytes]]) -> list[Checked]:
    """For each log row (position, relationship id hex, version, topic, state): does its
    content hash to the hash it carries? One loop: verification spends its time here."""
    sha256 = hashlib.sha256
    checked: list[Checked] = []
    append = checked.append
    for _position, originator_id, version, topic, state in rows:
        if (
            state[:9] == _PREFIX
            and state[_HASH_END : _HASH_END + 19] == _MIDDLE
            and state[_PREVIOUS_END:_BODY_START] == b'",'
        ):
            previous = state[_HASH_END + 19 : _PREVIOUS_END]
            event_type = _EVENT_TYPE_BYTES.get(topic) or _event_type_bytes(topic)
            # header and body in one buffer: cheaper than two updates
            content = b"%b\n%b\n%d\n%b\n{%b" % (
                previous,
                originator_id.encode(),
                version,
                event_type,
                state[_BODY_START:],
            )
            stored = state[9:_HASH_END].decode()
            if sha256(content).hexdigest() == stored:
                append((stored, previous.decode(), True))
                continue
        append(check_parsed(state, originator_id, version, topic))
    return checked


_EVENT_TYPE_BYTES: dict[str, bytes] = {}


def _event_type_bytes(topic: str) -> bytes:
    event_type = _EVENT_TYPE_BYTES[topic] = event_type_of(topic).encode()
    return event_type


def check_parsed(state: bytes, originator_id: str, version: int, topic: str) -> Checked:
    """The slow path: parse the stored event and rebuild its body with the reference
    encoder."""
    try:
        content: dict[str, Any] = orjson.loads(state)
    except orjson.JSONDecodeError:
        return None, None, False
    stored = content.pop(HASH, None)
    previous = content.pop(PREVIOUS_HASH, None)
    if not isinstance(stored, str) or not isinstance(previous, str):
        return None, previous if isinstance(previous, str) else None, False
    try:
        body = canonical_body(content)
    except (TypeError, ValueError):
        return stored, previous, False
    digest = hashlib.sha256(header(previous, originator_id, version, event_type_of(topic)))
    digest.update(body)
    return stored, previous, digest.hexdigest() == stored


def content_hash(
    previous_hash: str, originator_id: str, version: int, event_type: str, body: dict[str, Any]
) -> str:
    """The hash of an event rebuilt from its parts (an exported line)."""
    digest = hashlib.sha256(header(previous_hash, originator_id, version, event_type))
    digest.update(canonical_body(body))
    return digest.hexdigest()


HEAD_INPUT = struct.Struct(">32sq32s")


def advance(head: bytes, position: int, event_hash: bytes) -> bytes:
    """The global chain's head after the event at ``position``."""
    return hashlib.sha256(HEAD_INPUT.pack(head, position, event_hash)).digest()
