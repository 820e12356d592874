"""The arithmetic of the read models, without any store."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

from projections.follow_ups import anniversary_in
from projections.funnel import median_of_histogram
from projections.purchases import purchase_pattern


def _days(*entries: tuple[date, str]) -> dict[int, dict[str, Decimal]]:
    days: dict[int, dict[str, Decimal]] = {}
    for day, amount in entries:
        totals = days.setdefault(day.toordinal(), {})
        totals["EUR"] = totals.get("EUR", Decimal(0)) + Decimal(amount)
    return days


def test_a_single_purchase_day_has_frequency_zero_and_monetary_value_zero() -> None:
    pattern = purchase_pattern(_days((date(2024, 3, 1), "50")), date(2024, 3, 11))

    assert (pattern.frequency, pattern.recency, pattern.T) == (0, 0, 10)
    assert pattern.monetary_value == Decimal(0)
    assert (pattern.mean_interpurchase_days, pattern.expected_next_purchase_on) == (None, None)


def test_monetary_value_leaves_out_the_first_purchase_day() -> None:
    days = _days((date(2024, 1, 1), "1000"), (date(2024, 1, 3), "10"), (date(2024, 1, 5), "30"))

    pattern = purchase_pattern(days, date(2024, 1, 5))

    assert (pattern.frequency, pattern.recency, pattern.T) == (2, 4, 4)
    assert pattern.monetary_value == Decimal(20)
    assert pattern.expected_next_purchase_on == date(2024, 1, 7)


def test_purchases_after_the_observation_end_are_not_seen() -> None:
    pattern = purchase_pattern(_days((date(2024, 5, 1), "5")), date(2024, 4, 30))

    assert (pattern.purchase_days, pattern.frequency, pattern.T) == (0, None, None)


def test_median_of_a_histogram_averages_the_two_middle_values() -> None:
    assert median_of_histogram(Counter({1: 1, 3: 1})) == 2
    assert median_of_histogram(Counter({0: 4, 400: 1})) == 0
    assert median_of_histogram(Counter({5: 1, 10: 1, 20: 1, 400: 1})) == 15
    assert median_of_histogram(Counter()) is None


def test_anniversaries_of_29_february_fall_on_the_28th_in_common_years() -> None:
    assert anniversary_in(date(2024, 2, 29), 2025) == date(2025, 2, 28)
    assert anniversary_in(date(2024, 2, 29), 2028) == date(2028, 2, 29)
    assert anniversary_in(date(2024, 7, 14), 2026) == date(2026, 7, 14)
