"""The read model: an eventsourcing ``Projection`` that folds a page of events into
pending changes and writes them, with the page's position, in one transaction.

The library's ``ProjectionRunner`` calls ``process_event`` once per event and each call
is its own transaction: correct, but a few hundred events a second. Here the runner
(``projections.runner``) hands a read model many events, calling ``process_event`` for
each (dispatched on the event's class, as the library does), then ``commit`` once: the
rows changed by the whole batch and one ``Tracking`` row go to the view together.

Rows that the fold reads and changes are kept in a bounded cache between batches, so a
customer seen again is not read back from the view. The cache is only trusted while
this read model is the view's one writer, which ``write_page``'s compare-and-set
guarantees: when the position moved under it, ``reset`` drops everything held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from lifecycle.relationship import Relationship
from projections.views import SqlView

TView = TypeVar("TView", bound=SqlView)
TRow = TypeVar("TRow")

DEFAULT_CACHE_ROWS = 200_000


class ReadModel(Projection[TView]):
    """A projection whose changes are committed a batch at a time."""

    name: str = ""
    """The read model's name: environment prefix, table prefix, SQLite file suffix."""
    description: ClassVar[str] = ""
    view_classes: ClassVar[dict[str, type[SqlView]]] = {}
    """The view class for each backend ("sqlite", "postgres")."""

    def __init__(self, view: TView) -> None:
        super().__init__(view)
        self.pending_events = 0
        self.reset()

    def reset(self) -> None:
        """Forget every change not yet committed and every cached row."""
        self.pending_events = 0

    def prefetch(self, events: Sequence[Any]) -> None:
        """Load, in few queries, the rows that ``events`` are about to change."""

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Fold one event into the pending changes; events of other classes are ignored."""

    def write(self, cursor: Any) -> None:
        """Write the pending changes with ``cursor`` (inside the page's transaction)."""

    def committed(self) -> None:
        """The pending changes are in the view: start a new batch."""
        self.pending_events = 0

    def commit(self, tracking: Tracking, expected: int | None) -> None:
        """Write the pending changes and ``tracking`` in one transaction."""
        self.view.write_page(tracking, expected, self.write)
        self.committed()


class RowCache(Generic[TRow]):
    """Rows keyed by a string, read from the view on demand and written back when dirty.

    ``load`` turns a database row into a row object; rows absent from the view are
    made by the fold itself (``put``).
    """

    def __init__(
        self,
        fetch: Callable[[Iterable[str]], Iterable[tuple[str, TRow]]],
        limit: int = DEFAULT_CACHE_ROWS,
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self.rows: dict[str, TRow | None] = {}
        self.dirty: dict[str, TRow] = {}

    def clear(self) -> None:
        self.rows.clear()
        self.dirty.clear()

    def prefetch(self, keys: Iterable[str]) -> None:
        missing = {key for key in keys if key not in self.rows}
        if not missing:
            return
        for key, row in self._fetch(missing):
            self.rows[key] = row
            missing.discard(key)
        for key in missing:
            self.rows[key] = None

    def get(self, key: str) -> TRow | None:
        if key not in self.rows:
            self.prefetch((key,))
        return self.rows[key]

    def put(self, key: str, row: TRow) -> None:
        self.rows[key] = row
        self.dirty[key] = row

    def touched(self, key: str, row: TRow) -> None:
        self.dirty[key] = row

    def committed(self) -> None:
        """The dirty rows are written; bound the memory held."""
        self.dirty.clear()
        if len(self.rows) > self._limit:
            self.rows.clear()


# The events every read model folds (RelationshipStarted is made by ``@event`` at class
# creation, so static checkers cannot see it).
RelationshipStarted: type[Any] = Relationship.RelationshipStarted  # type: ignore[attr-defined]
TouchpointRecorded = Relationship.TouchpointRecorded
StageChanged = Relationship.StageChanged
