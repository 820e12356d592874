"""Shards of a rebuild: the customers split between the processes that share it.

A rebuild shared between ``count`` processes gives each one shard: the customers whose
relationship id, as an integer, is ``index`` modulo ``count`` (ids are uuid5 of the
customer id, so shards are even and the same in every process). Each shard tracks its
own position in the next generation's tracking table, under a name with a suffix of its
own. ("Partition" is Kafka's word, for a partition of a topic.)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from uuid import UUID

_HEX_DIGITS = "0123456789abcdef"


def shard_of(originator_id: UUID | str, count: int) -> int:
    """Which of ``count`` shards an aggregate's events belong to."""
    if isinstance(originator_id, UUID):
        return originator_id.int % count
    return zlib.crc32(originator_id.encode()) % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``; ``Shard(0, 1)`` is the whole log."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"no shard {self.index} of {self.count}")

    @property
    def is_whole_log(self) -> bool:
        return self.count == 1

    @property
    def tracking_suffix(self) -> str:
        """What this shard adds to the name its position is tracked under: ``:i/n``
        (nothing for the whole log). Stores written by earlier releases hold these
        names: never change them."""
        return "" if self.is_whole_log else f":{self.index}/{self.count}"

    @property
    def hex_digits(self) -> str | None:
        """The last hex digits of the ids of this shard's aggregates, when those alone
        decide it (``count`` divides 16), so that a store can select the shard itself;
        None when they do not, or for the whole log."""
        if self.is_whole_log or 16 % self.count:
            return None
        return "".join(d for d in _HEX_DIGITS if int(d, 16) % self.count == self.index)


WHOLE_LOG = Shard(0, 1)

TRACKING_SUFFIX_PATTERN = ":%"
"""A SQL ``LIKE`` pattern matching any shard's ``tracking_suffix`` but the whole log's."""
