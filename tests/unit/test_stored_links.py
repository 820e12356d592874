"""Stored events and their hashes: the fast encoder writes exactly the reference bytes,
the transcoder stores what was hashed, and the link check reads it back from bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.audit.chain import check_rows, stored_chain_fields
from lifecycle.domain.hashchain import canonical_body, event_hash, install_hasher
from lifecycle.persistence.transcoding import OrjsonTranscoder, orjson_canonical_body, orjson_hasher

RELATIONSHIP = "5b0b8f523c554a7e9d6a2f1f6c9e1a7d"
TOPIC = "lifecycle.domain.relationship:Relationship.TouchpointRecorded"


def json_values(integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | integers
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


times = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-23 * 60, 23 * 60),
)
# Any JSON value, integers beyond 64 bits too (the fast encoder hands those over) ...
states = st.dictionaries(
    st.text(max_size=12), json_values(st.integers(-(2**70), 2**70)) | times, max_size=8
)
# ... and what the store can hold (its JSON reader turns wider integers into floats).
storable_states = st.dictionaries(
    st.text(max_size=12), json_values(st.integers(-(2**63), 2**63 - 1)) | times, max_size=8
)


@given(states)
def test_the_fast_encoder_writes_exactly_the_reference_bytes(state: dict[str, Any]) -> None:
    expected = canonical_body(
        {k: v for k, v in state.items() if k not in ("hash", "previous_hash")}
    )
    assert orjson_canonical_body(state) == expected


def stored(state: dict[str, Any], version: int = 2) -> bytes:
    install_hasher(orjson_hasher)
    full = {**state, "previous_hash": "a" * 64}
    full["hash"] = event_hash("TouchpointRecorded", RELATIONSHIP, version, full)
    return OrjsonTranscoder().encode(full)


def check(state: bytes, version: int = 2) -> tuple[str | None, str | None, bool]:
    return check_rows([(1, RELATIONSHIP, version, TOPIC, state)])[0]


SAMPLE = {
    "timestamp": datetime(2025, 5, 1, 8, 0, 0, 123456, tzinfo=UTC),
    "customer_id": "c-1",
    "attributes": {"amount": "12.50", "note": "naïve ✓"},
    "personal": None,
}


def test_a_stored_event_starts_with_its_hash_and_previous_hash() -> None:
    state = stored(SAMPLE)
    chain_hash, previous = stored_chain_fields(state)
    assert state.startswith(b'{"hash":"' + (chain_hash or "").encode())
    assert previous == "a" * 64


def test_a_stored_event_checks_out_from_its_bytes() -> None:
    assert check(stored(SAMPLE))[2] is True


@given(storable_states)
def test_any_stored_event_checks_out_from_its_bytes(state: dict[str, Any]) -> None:
    assert check(stored(state))[2] is True


def test_an_event_holding_floats_checks_out_on_the_slow_path() -> None:
    state = stored({**SAMPLE, "attributes": {"ratio": 1e-05, "scores": [0.5, 2.0]}})
    assert check(state)[2] is True


def test_edited_bytes_do_not_check_out() -> None:
    state = stored(SAMPLE).replace(b"12.50", b"92.50")
    assert check(state)[2] is False


def test_a_stored_event_does_not_check_out_at_another_version() -> None:
    assert check(stored(SAMPLE), version=3)[2] is False


def test_an_event_in_another_layout_checks_out_on_the_slow_path() -> None:
    import orjson

    content = orjson.loads(stored(SAMPLE))
    reordered = orjson.dumps(dict(reversed(list(content.items()))))
    assert check(reordered)[2] is True
