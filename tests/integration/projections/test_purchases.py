"""Purchase patterns (BTYD, with an observation end) and category affinity."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from projections.purchases import purchase_pattern
from tests.integration.projections.conftest import History, Project


def test_pattern_counts_purchase_days_up_to_the_observation_end(
    history: History, project: Project
) -> None:
    history("c1", "purchase", 0, amount="10")  # 2024-01-01
    history("c1", "purchase", 0.1, amount="5")  # same day
    history("c1", "purchase", 7, amount="20")  # 2024-01-08
    history("c1", "purchase", 30, amount="30")  # 2024-01-31
    history("c1", "purchase", 40, amount="100")  # after the observation end

    row, _ = project(["purchases"])["purchases"].customer("c1")
    pattern = purchase_pattern(row.days, date(2024, 2, 5))

    assert (pattern.frequency, pattern.recency, pattern.T) == (2, 30, 35)
    assert (pattern.currency, pattern.monetary_value) == ("EUR", Decimal(25))
    assert pattern.mean_interpurchase_days == 15.0
    assert pattern.expected_next_purchase_on == date(2024, 2, 15)
    assert (pattern.first_purchase_on, pattern.last_purchase_on) == (
        date(2024, 1, 1),
        date(2024, 1, 31),
    )


def test_monetary_value_is_in_the_currency_bought_in_on_most_days(
    history: History, project: Project
) -> None:
    history("c5", "purchase", 0, amount="10")
    history("c5", "purchase", 1, amount="5", currency="USD")
    history("c5", "purchase", 2, amount="20")

    row, _ = project(["purchases"])["purchases"].customer("c5")
    pattern = purchase_pattern(row.days, date(2024, 12, 31))

    assert (pattern.currency, pattern.monetary_value) == ("EUR", Decimal(10))
    assert pattern.monetary_value_by_currency == {"EUR": Decimal(10), "USD": Decimal("2.5")}


def test_a_customer_without_purchases_is_known_but_has_no_pattern(
    history: History, project: Project
) -> None:
    history("c9", "inquiry", 0)
    purchases = project(["purchases"])["purchases"]

    row, _ = purchases.customer("c9")

    assert purchase_pattern(row.days, date(2024, 6, 1)).frequency is None
    assert purchases.customer("nobody")[0] is None


def test_affinity_suggests_categories_bought_with_the_customers_own(
    history: History, project: Project
) -> None:
    for customer, categories in {
        "c1": ["books", "music"],
        "c2": ["books", "garden"],
        "c3": ["books", "garden", "toys"],
        "c4": ["music"],
    }.items():
        for n, category in enumerate(categories):
            history(customer, "purchase", n, amount="1", category=category)
    purchases = project(["purchases"])["purchases"]

    assert [(a.category, a.score) for a in purchases.affinity(["music"])] == [("books", 0.5)]
    assert [(a.category, a.score) for a in purchases.affinity(["books", "music"])] == [
        ("garden", 0.666667),
        ("toys", 0.333333),
    ]
