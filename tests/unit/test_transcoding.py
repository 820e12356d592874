"""The wire format's readers: a decode that matches the library's transcoder, and the
touchpoint kinds read from stored bytes without decoding them; the fast canonical body
that the hash chain and the store share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

import orjson
from eventsourcing.persistence import JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.domain.hashchain import canonical_body
from lifecycle.persistence.transcoding import (
    OrjsonTranscoder,
    orjson_canonical_body,
    stored_kinds,
)

STATE = {
    "customer_id": "c1",
    "kind": "purchase",
    "occurred_at": datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "attributes": {"amount": Decimal("12.50"), "when": [datetime(2024, 1, 1, tzinfo=UTC)]},
    "ids": {"b", "a"},
}


def test_decoding_reads_what_the_librarys_transcoder_writes() -> None:
    library = JSONTranscoder()
    for transcoding in OrjsonTranscoder().types.values():
        if transcoding.name not in library.names:
            library.register(transcoding)

    assert OrjsonTranscoder().decode(library.encode(STATE)) == STATE


def test_decoding_reads_back_what_it_wrote() -> None:
    transcoder = OrjsonTranscoder()

    assert transcoder.decode(transcoder.encode(STATE)) == STATE


def test_a_stored_touchpoints_kind_is_read_without_decoding() -> None:
    assert stored_kinds(OrjsonTranscoder().encode(STATE)) == [b"purchase"]


def test_a_kind_field_in_the_attributes_is_read_too() -> None:
    state = {"attributes": {"kind": "gift"}, "kind": "purchase"}

    assert stored_kinds(orjson.dumps(state)) == [b"gift", b"purchase"]


def test_state_written_another_way_names_no_kind() -> None:
    assert stored_kinds(b'{"kind": "purchase"}') == []


class _Fixed(tzinfo):
    """A time zone not of the standard library's: orjson is not trusted with it."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=2)


ZONES = st.one_of(
    st.just(UTC),
    st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-1439, 1439)),
    st.builds(lambda seconds: timezone(timedelta(seconds=seconds)), st.integers(-86399, 86399)),
    st.just(_Fixed()),
    st.none(),
)


@given(st.datetimes(), ZONES)
def test_the_fast_body_writes_every_datetime_as_the_reference_encoder_does(
    moment: datetime, zone: tzinfo | None
) -> None:
    state = {"at": moment.replace(tzinfo=zone), "kind": "purchase", "nested": {"n": 1}}

    assert orjson_canonical_body(state) == canonical_body(state)
