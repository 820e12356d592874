"""Purchase patterns by the conventions of customer-base analysis ("buy till you die"),
with days as the period (Contract 4), from a customer's purchase days:

- ``frequency`` = number of distinct purchase days - 1 (repeat purchase days)
- ``recency`` = days from the first to the last purchase day
- ``T`` = days from the first purchase day to the observation end
- ``monetary_value`` = mean of the per-day purchase totals excluding the first purchase
  day (0 when frequency is 0), in the customer's main currency (the one bought in on
  most days; other currencies are in ``monetary_value_by_currency``)
- mean inter-purchase interval = recency / frequency; expected next purchase = last
  purchase day + that interval.

Only purchases on or before the observation end count. The purchase-pattern read model
and the analytics models (Contract 8) both summarise purchases by this one definition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

PurchaseDays = Mapping[int, Mapping[str, Decimal]]
"""Purchase day (proleptic Gregorian ordinal, UTC) -> currency -> that day's total."""


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


def purchase_pattern(days: PurchaseDays, observation_end: date) -> PurchasePattern:
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
