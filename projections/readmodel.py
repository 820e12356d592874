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

import inspect
from collections.abc import Callable, Iterable, Sequence
from types import MethodType
from typing import Any, ClassVar, Generic, TypeVar

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from lifecycle.domain.relationship import Relationship
from lifecycle.persistence.topics import stored_topics
from projections.views import SqlView

# The events every read model folds (RelationshipStarted is made by ``@event`` at class
# creation, so static checkers cannot see it).
RelationshipStarted: type[Any] = Relationship.RelationshipStarted
TouchpointRecorded = Relationship.TouchpointRecorded
StageChanged = Relationship.StageChanged
AccountManagerAssigned = Relationship.AccountManagerAssigned
AccountManagerUnassigned = Relationship.AccountManagerUnassigned

TView = TypeVar("TView", bound=SqlView)
TRow = TypeVar("TRow")

DEFAULT_CACHE_ROWS = 150_000


class ReadModel(Projection[TView]):
    """A projection whose changes are committed a batch at a time."""

    name: str = ""
    """The read model's name: environment prefix, table prefix, SQLite file suffix."""
    description: ClassVar[str] = ""
    view_classes: ClassVar[dict[str, type[SqlView]]] = {}
    """The view class for each backend ("sqlite", "postgres")."""
    topics: tuple[str, ...] = tuple(
        topic
        for cls in (RelationshipStarted, TouchpointRecorded, StageChanged)
        for topic in stored_topics(cls)
    )
    """The event classes read from the log, by every topic they are stored under (the
    library's ``Projection.topics``); a read model that folds others adds theirs."""
    touchpoint_kinds: ClassVar[frozenset[str] | None] = None
    """The kinds of touchpoint this read model folds (None: all); the runner does not
    hand it the others."""

    def __init__(self, view: TView) -> None:
        super().__init__(view)
        self.pending_events = 0
        self.handlers: dict[type[Any], Callable[[Any, Tracking], None] | None] = {}
        self.reset()

    def handler_for(self, event_class: type[Any]) -> Callable[[Any, Tracking], None] | None:
        """``process_event`` resolved once per event class (None: events of this class
        are ignored), sparing the dispatch on every event of a rebuild."""
        try:
            return self.handlers[event_class]
        except KeyError:
            pass
        dispatcher = inspect.getattr_static(type(self), "process_event").dispatcher
        function = dispatcher.dispatch(event_class)
        ignored = function is dispatcher.dispatch(object)
        handler = None if ignored else MethodType(function, self)
        self.handlers[event_class] = handler
        return handler

    def wants_commit(self) -> bool:
        """Whether the changes held have grown as large as memory allows."""
        return False

    def reset(self) -> None:
        """Forget every change not yet committed and every cached row."""
        self.pending_events = 0

    def row_cache(
        self, fetch: Callable[[Iterable[str]], Iterable[tuple[str, TRow]]]
    ) -> RowCache[TRow]:
        """A row cache, complete from the start when the view has projected nothing."""
        return RowCache(fetch, complete=self.view.position() is None)

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
        *,
        complete: bool = False,
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self.rows: dict[str, TRow | None] = {}
        self.dirty: dict[str, TRow] = {}
        self.complete = complete
        """Every row of the view is held here (it was empty and nothing was dropped), so
        a key not held has no row: nothing need be read (a rebuild from zero)."""

    def clear(self) -> None:
        self.rows.clear()
        self.dirty.clear()
        self.complete = False

    def prefetch(self, keys: Iterable[str]) -> None:
        if self.complete:
            return
        missing = {key for key in keys if key not in self.rows}
        if not missing:
            return
        for key, row in self._fetch(missing):
            self.rows[key] = row
            missing.discard(key)
        for key in missing:
            self.rows[key] = None

    def get(self, key: str) -> TRow | None:
        try:
            return self.rows[key]
        except KeyError:
            if self.complete:
                return None
            self.prefetch((key,))
            return self.rows[key]

    def put(self, key: str, row: TRow) -> None:
        self.rows[key] = row
        self.dirty[key] = row

    def touched(self, key: str, row: TRow) -> None:
        self.dirty[key] = row

    @property
    def is_full(self) -> bool:
        return len(self.dirty) >= self._limit

    def committed(self) -> None:
        """The dirty rows are written; bound the memory held."""
        self.dirty.clear()
        if len(self.rows) > self._limit:
            self.rows.clear()
            self.complete = False
