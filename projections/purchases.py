"""Purchase patterns by the BTYD conventions of customer-base analysis, and category
affinity.

Per customer the view keeps each purchase day (UTC calendar day) with its totals by
currency, and the categories bought. The pattern is computed when asked, for an
observation end (a date; purchases after it are not seen), with days as the period, by
``lifecycle.domain.purchases.purchase_pattern`` (frequency, recency, T, monetary value,
mean inter-purchase interval, expected next purchase): the analytics models read the
same rows and summarise them by the same definition.

Category affinity: for the categories S a customer bought, every other category x is
scored Σ over s in S of P(x | s), the share of customers who bought s that also bought
x (co-purchase counts kept by the projection). The best-scored categories not in S are
what customers with similar histories bought.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.purchases import PurchaseDays
from lifecycle.domain.purchases import purchase_pattern as purchase_pattern  # the read API's
from lifecycle.domain.vocabulary import Kind
from projections.readmodel import ReadModel, RelationshipStarted, RowCache, TouchpointRecorded
from projections.views import SqlView, Table, backend_views

_CURRENCY_SLOTS = 1 << 12
_CURRENCY_CODES: dict[str, int] = {}
_CURRENCY_NAMES: list[str] = []


def _currency_code(currency: str) -> int:
    """A small number for a currency, the same for the life of the process."""
    code = _CURRENCY_CODES.get(currency)
    if code is None:
        if len(_CURRENCY_NAMES) == _CURRENCY_SLOTS:
            raise ValueError(f"more than {_CURRENCY_SLOTS} distinct currencies")
        code = _CURRENCY_CODES[currency] = len(_CURRENCY_NAMES)
        _CURRENCY_NAMES.append(currency)
    return code


class PurchaseRow:
    """One customer's purchase days and categories.

    A rebuild holds a row per customer, so a row is a few flat tuples: totals as key,
    total, key, total, … (one key per purchase day and currency: day * slots + currency
    code), categories as name, count, name, count, … with names shared between rows.
    """

    __slots__ = ("_categories", "_totals", "customer_id")

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self._totals: tuple[Any, ...] = ()
        self._categories: tuple[Any, ...] = ()

    def add(self, day: int, currency: str, amount: Decimal) -> None:
        self._totals = _added(
            self._totals, day * _CURRENCY_SLOTS + _currency_code(currency), amount
        )

    def buy(self, category: str) -> bool:
        """Count a purchase in ``category``; whether it is the first in it."""
        first = category not in self.category_names()
        self._categories = _added(self._categories, sys.intern(category), 1)
        return first

    def category_names(self) -> tuple[str, ...]:
        return self._categories[::2]

    @property
    def categories(self) -> dict[str, int]:
        """Purchases by category."""
        pairs = self._categories
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    @property
    def days(self) -> dict[int, dict[str, Decimal]]:
        """Purchase day (proleptic ordinal, UTC) -> currency -> total, days ascending."""
        pairs = self._totals
        days: dict[int, dict[str, Decimal]] = {}
        for key, total in sorted(zip(pairs[::2], pairs[1::2], strict=True)):
            day, code = divmod(key, _CURRENCY_SLOTS)
            days.setdefault(day, {})[_CURRENCY_NAMES[code]] = total
        return days

    def to_db(self) -> tuple[Any, ...]:
        days = {
            str(day): {c: str(v) for c, v in sorted(totals.items())}
            for day, totals in self.days.items()
        }
        return (
            self.customer_id,
            orjson.dumps(days).decode(),
            orjson.dumps(dict(sorted(self.categories.items()))).decode(),
        )

    @classmethod
    def from_db(cls, row: Any) -> PurchaseRow:
        self = cls(row["customer_id"])
        for day, totals in orjson.loads(row["days"]).items():
            for currency, total in totals.items():
                self.add(int(day), currency, Decimal(total))
        for name, count in orjson.loads(row["categories"]).items():
            self._categories = _added(self._categories, sys.intern(name), count)
        return self


def decode_days(text: str) -> dict[int, dict[str, Decimal]]:
    """A row's purchase days as stored (``PurchaseRow.to_db``), decoded."""
    return {
        int(day): {currency: Decimal(total) for currency, total in totals.items()}
        for day, totals in orjson.loads(text).items()
    }


def _added(pairs: tuple[Any, ...], key: Any, amount: Any) -> tuple[Any, ...]:
    """``pairs`` (key, value, key, value, …) with ``amount`` added to ``key``'s value."""
    for index in range(0, len(pairs), 2):
        if pairs[index] == key:
            return (*pairs[: index + 1], pairs[index + 1] + amount, *pairs[index + 2 :])
    return (*pairs, key, amount)


_ZERO = Decimal(0)


@dataclass(frozen=True)
class Affinity:
    category: str
    score: float
    customers: int
    """Customers who bought it together with one of this customer's categories."""


class PurchasesView(SqlView):
    projection_name = "purchases"
    tables = (
        Table(
            "customers",
            (
                ("customer_id", "TEXT NOT NULL"),
                ("days", "TEXT NOT NULL"),
                ("categories", "TEXT NOT NULL"),
            ),
            ("customer_id",),
        ),
        Table(
            "categories",
            (("category", "TEXT NOT NULL"), ("customers", "BIGINT NOT NULL")),
            ("category",),
        ),
        Table(
            "category_pairs",
            (
                ("category", "TEXT NOT NULL"),
                ("other", "TEXT NOT NULL"),
                ("customers", "BIGINT NOT NULL"),
            ),
            ("category", "other"),
        ),
    )

    def rows_for(self, keys: Iterable[str]) -> list[tuple[str, PurchaseRow]]:
        return [
            (row["customer_id"], PurchaseRow.from_db(row))
            for row in self.load_by_keys("customers", "customer_id", keys)
        ]

    def write_changes(
        self,
        cursor: Any,
        rows: Iterable[PurchaseRow],
        categories: Counter[str],
        pairs: Counter[tuple[str, str]],
    ) -> None:
        self.upsert(cursor, "customers", (r.to_db() for r in rows))
        add = "customers = {table}.customers + excluded.customers"
        if categories:
            self.upsert(
                cursor,
                "categories",
                sorted(categories.items()),
                [add.format(table=self.table("categories"))],
            )
        if pairs:
            self.upsert(
                cursor,
                "category_pairs",
                [(a, b, n) for (a, b), n in sorted(pairs.items())],
                [add.format(table=self.table("category_pairs"))],
            )

    def histories(self) -> tuple[list[tuple[str, PurchaseDays]], int | None]:
        """Every customer with a purchase and their purchase days, and the position
        they reflect, read in one snapshot (what the analytics models are fitted on)."""
        rows, position = self.fetch_with_position(
            "SELECT customer_id, days FROM {customers} WHERE days <> '{{}}'"
        )
        return [(row["customer_id"], decode_days(row["days"])) for row in rows], position

    def customer(self, customer_id: str) -> tuple[PurchaseRow | None, int | None]:
        rows, position = self.fetch_with_position(
            "SELECT * FROM {customers} WHERE customer_id = ?", (customer_id,)
        )
        return (PurchaseRow.from_db(rows[0]) if rows else None), position

    def affinity(self, bought: Sequence[str], limit: int = 3) -> list[Affinity]:
        """Categories most bought by customers who bought what ``bought`` holds."""
        if not bought:
            return []
        marks = ", ".join("?" * len(bought))
        statement = (
            "SELECT p.category, p.other, p.customers, c.customers AS base "
            "FROM {category_pairs} p JOIN {categories} c ON c.category = p.category "
            f"WHERE p.category IN ({marks})"
        )
        scores: dict[str, float] = {}
        together: Counter[str] = Counter()
        for row in self.fetch(statement, list(bought)):
            other = row["other"]
            if other in bought or not row["base"]:
                continue
            scores[other] = scores.get(other, 0.0) + row["customers"] / row["base"]
            together[other] += row["customers"]
        best = sorted(scores, key=lambda c: (-scores[c], c))[:limit]
        return [Affinity(c, round(scores[c], 6), together[c]) for c in best]


class Purchases(ReadModel[PurchasesView]):
    """Projects purchase days per customer and category co-purchases."""

    name = "purchases"
    description = "purchase patterns (BTYD) and category affinity"
    view_classes = backend_views(PurchasesView)
    touchpoint_kinds = frozenset({Kind.PURCHASE.value})

    def reset(self) -> None:
        super().reset()
        self.cache: RowCache[PurchaseRow] = self.row_cache(self.view.rows_for)
        self.categories: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()

    def prefetch(self, events: Sequence[Any]) -> None:
        if self.cache.complete:
            return
        purchase = Kind.PURCHASE
        self.cache.prefetch(
            {
                e.customer_id
                for e in events
                if type(e) is not TouchpointRecorded or e.kind == purchase
            }
        )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other classes are no purchases."""

    @process_event.register(RelationshipStarted)
    def _started(self, domain_event: Any, tracking: Tracking) -> None:
        customer_id = domain_event.customer_id
        if self.cache.get(customer_id) is None:
            self.cache.put(customer_id, PurchaseRow(customer_id))

    @process_event.register(TouchpointRecorded)
    def _touchpoint(self, domain_event: Any, tracking: Tracking) -> None:
        if domain_event.kind != Kind.PURCHASE:
            return
        customer_id: str = domain_event.customer_id
        row = self.cache.get(customer_id)
        if row is None:
            row = PurchaseRow(customer_id)
        self.cache.put(customer_id, row)
        attributes = domain_event.attributes
        at: datetime = domain_event.occurred_at
        utc = at if at.tzinfo is UTC else at.astimezone(UTC)
        row.add(
            utc.date().toordinal(),
            str(attributes.get("currency", "")),
            Decimal(str(attributes["amount"])),
        )
        category = attributes.get("category")
        if category:
            category = str(category)
            if row.buy(category):
                self.categories[category] += 1
                for other in row.category_names():
                    if other != category:
                        self.pairs[(category, other)] += 1
                        self.pairs[(other, category)] += 1

    def wants_commit(self) -> bool:
        return self.cache.is_full

    def write(self, cursor: Any) -> None:
        self.view.write_changes(cursor, self.cache.dirty.values(), self.categories, self.pairs)

    def committed(self) -> None:
        super().committed()
        self.cache.committed()
        self.categories.clear()
        self.pairs.clear()
