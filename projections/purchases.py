"""Purchase patterns by the BTYD conventions of customer-base analysis, and category
affinity.

Per customer the view keeps each purchase day (UTC calendar day) with its totals by
currency, and the categories bought. The pattern is computed when asked, for an
observation end (a date; purchases after it are not seen), with days as the period:

- ``frequency`` = number of distinct purchase days - 1 (repeat purchase days)
- ``recency`` = days from the first to the last purchase day
- ``T`` = days from the first purchase day to the observation end
- ``monetary_value`` = mean of the per-day purchase totals excluding the first purchase
  day (0 when frequency is 0), in the customer's main currency (the one bought in on
  most days; other currencies are in ``monetary_value_by_currency``)
- mean inter-purchase interval = recency / frequency; expected next purchase = last
  purchase day + that interval.

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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking

from lifecycle.domain.vocabulary import Kind
from projections.readmodel import ReadModel, RelationshipStarted, RowCache, TouchpointRecorded
from projections.views import PostgresView, SQLiteView, SqlView, Table

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


def _added(pairs: tuple[Any, ...], key: Any, amount: Any) -> tuple[Any, ...]:
    """``pairs`` (key, value, key, value, …) with ``amount`` added to ``key``'s value."""
    for index in range(0, len(pairs), 2):
        if pairs[index] == key:
            return (*pairs[: index + 1], pairs[index + 1] + amount, *pairs[index + 2 :])
    return (*pairs, key, amount)


_ZERO = Decimal(0)


@dataclass(frozen=True)
class PurchasePattern:
    observation_end: date
    purchase_days: int
    first_purchase_on: date | None
    last_purchase_on: date | None
    frequency: int | None
    recency: int | None
    T: int | None
    currency: str | None
    monetary_value: Decimal | None
    monetary_value_by_currency: dict[str, Decimal]
    mean_interpurchase_days: float | None
    expected_next_purchase_on: date | None


def purchase_pattern(days: dict[int, dict[str, Decimal]], observation_end: date) -> PurchasePattern:
    """The BTYD summary of purchase days (ordinal -> currency -> total) up to
    ``observation_end`` (inclusive)."""
    end = observation_end.toordinal()
    seen = sorted(day for day in days if day <= end)
    if not seen:
        return PurchasePattern(
            observation_end, 0, None, None, None, None, None, None, None, {}, None, None
        )
    first, last = seen[0], seen[-1]
    frequency = len(seen) - 1
    recency = last - first
    currency_days: Counter[str] = Counter()
    repeat_totals: dict[str, Decimal] = {}
    for day in seen:
        for currency, total in days[day].items():
            currency_days[currency] += 1
            if day != first:
                repeat_totals[currency] = repeat_totals.get(currency, Decimal(0)) + total
    currency = min(currency_days, key=lambda c: (-currency_days[c], c))
    by_currency = {
        c: (repeat_totals.get(c, Decimal(0)) / frequency if frequency else Decimal(0))
        for c in sorted(currency_days)
    }
    interval = recency / frequency if frequency else None
    return PurchasePattern(
        observation_end=observation_end,
        purchase_days=len(seen),
        first_purchase_on=date.fromordinal(first),
        last_purchase_on=date.fromordinal(last),
        frequency=frequency,
        recency=recency,
        T=end - first,
        currency=currency,
        monetary_value=by_currency[currency],
        monetary_value_by_currency=by_currency,
        mean_interpurchase_days=interval,
        expected_next_purchase_on=(
            date.fromordinal(last) + timedelta(days=round(interval))
            if interval is not None
            else None
        ),
    )


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


class SQLitePurchasesView(PurchasesView, SQLiteView):
    pass


class PostgresPurchasesView(PurchasesView, PostgresView):
    pass


class Purchases(ReadModel[PurchasesView]):
    """Projects purchase days per customer and category co-purchases."""

    name = "purchases"
    description = "purchase patterns (BTYD) and category affinity"
    view_classes = {"sqlite": SQLitePurchasesView, "postgres": PostgresPurchasesView}  # noqa: RUF012
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
