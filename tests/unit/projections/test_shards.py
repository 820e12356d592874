"""Shards of a rebuild, without any store."""

from __future__ import annotations

from uuid import uuid5

import pytest

from lifecycle.domain.relationship import RELATIONSHIP_NAMESPACE
from projections.shards import WHOLE_LOG, Shard, shard_of

IDS = [uuid5(RELATIONSHIP_NAMESPACE, f"c-{n}") for n in range(200)]


def test_a_shard_of_several_is_tracked_under_its_index_and_count() -> None:
    # Stores written by earlier releases track a rebuild's shards under these names.
    assert [Shard(i, 4).tracking_suffix for i in range(4)] == [":0/4", ":1/4", ":2/4", ":3/4"]


def test_the_whole_log_adds_nothing_to_the_tracking_name() -> None:
    assert (WHOLE_LOG, WHOLE_LOG.tracking_suffix) == (Shard(0, 1), "")


@pytest.mark.parametrize("count", [2, 4, 8, 16])
def test_the_hex_digits_of_a_shard_select_exactly_its_customers(count: int) -> None:
    for index in range(count):
        digits = Shard(index, count).hex_digits
        assert digits is not None
        assert [i for i in IDS if i.hex[-1] in digits] == [
            i for i in IDS if shard_of(i, count) == index
        ]


@pytest.mark.parametrize("shard", [Shard(1, 3), Shard(0, 32), WHOLE_LOG])
def test_no_hex_digits_decide_the_whole_log_or_a_shard_of_a_count_not_dividing_16(
    shard: Shard,
) -> None:
    assert shard.hex_digits is None


def test_the_shards_of_the_customers_are_about_even() -> None:
    sizes = [sum(shard_of(i, 4) == index for i in IDS) for index in range(4)]
    assert min(sizes) > len(IDS) // 8


@pytest.mark.parametrize(("index", "count"), [(4, 4), (-1, 4), (0, 0)])
def test_a_shard_outside_its_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="no shard"):
        Shard(index, count)
