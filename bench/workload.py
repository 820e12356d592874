"""Benchmark inputs: N valid Contract 1 touchpoints over C customers.

``write_workload``: JSON lines of a realistic mix of kinds (purchases with amounts and
categories, surveys, complaints and their resolutions, inquiries and responses,
marketing), spread over two years in time order, so the policy does real work:
customers move through every stage. ``simulated_messages``: the simulated population
of ``lifecycle.simulation``, folded onto a number of customers.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lifecycle.domain.clock import utc_now
from lifecycle.simulation import simulate_population

KINDS = (
    ("marketing", 18),
    ("inquiry", 8),
    ("response", 6),
    ("purchase", 25),
    ("delivery", 12),
    ("survey", 6),
    ("support_request", 5),
    ("complaint", 2),
    ("complaint_resolved", 2),
    ("follow_up", 6),
    ("community", 3),
    ("referral", 2),
    ("trial", 2),
    ("renewal", 1),
    ("cancellation", 2),
)
CATEGORIES = ("books", "music", "garden", "kitchen", "toys", "sports", "office", "beauty")


def write_workload(path: Path, touchpoints: int, customers: int, seed: int = 11) -> Path:
    if path.exists():
        return path
    rng = random.Random(seed)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    step = timedelta(days=730) / touchpoints
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for number in range(touchpoints):
            kind = rng.choices(names, weights)[0]
            attributes: dict[str, object] = {}
            if kind == "purchase":
                attributes = {
                    "amount": f"{rng.uniform(3, 300):.2f}",
                    "category": rng.choice(CATEGORIES),
                }
            elif kind == "survey":
                attributes = {"score": rng.randint(0, 10)}
            elif kind in ("complaint", "complaint_resolved"):
                attributes = {"complaint_id": f"cmp-{rng.randrange(customers * 2)}"}
            message = {
                "event_id": f"bench-{number}",
                "customer_id": f"cust-{rng.randrange(customers):07d}",
                "kind": kind,
                "channel": rng.choice(("web", "email", "phone", "chat")),
                "occurred_at": (start + step * number).isoformat(timespec="seconds"),
                "source": "bench",
                "attributes": attributes,
            }
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
    tmp.rename(path)
    return path


def simulated_messages(touchpoints: int, customers: int, seed: int = 11) -> list[dict[str, Any]]:
    """``touchpoints`` messages of a simulated population (``lifecycle.simulation``: its
    personas, late and doubled deliveries, personal data) over ``customers`` ids.

    The simulation gives each customer about nine touchpoints; when more are asked
    for, a larger population is simulated and folded onto ``customers`` ids, so some
    customers live two simulated lives (their event ids stay unique).
    """
    end = utc_now()
    simulated = customers
    while True:
        messages = simulate_population(simulated, end=end, years=2.0, seed=seed)
        if len(messages) >= touchpoints:
            break
        simulated = int(simulated * touchpoints / len(messages) * 1.02) + 1
    for message in messages:
        number = int(message["customer_id"].removeprefix("cust-")) % customers
        message["customer_id"] = f"cust-{number:06d}"
    return messages[:touchpoints]
