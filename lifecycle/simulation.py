"""A seeded simulation of a customer population, for the demo and the benchmarks.

Customers follow personas whose behaviour walks every path of Contract 2: browsers who
only look, one-time buyers who lapse into inactivity, repeat buyers who become loyal,
referrers, subscribers who renew, unhappy customers who complain and cancel (and some
who come back), and lapsed customers who return after more than a year. Deliveries,
thank-you calls, responses to inquiries, surveys and support requests fill in the days
between. A few messages arrive late, twice, or broken, as they do in real feeds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CATEGORIES = ("books", "music", "garden", "kitchen", "toys", "sports", "office", "beauty")
SOURCES = {
    "marketing": "marketing",
    "inquiry": "helpdesk",
    "response": "helpdesk",
    "sales_contact": "field-sales",
    "trial": "shop",
    "purchase": "shop",
    "delivery": "shop",
    "support_request": "helpdesk",
    "complaint": "helpdesk",
    "complaint_resolved": "helpdesk",
    "survey": "marketing",
    "follow_up": "field-sales",
    "referral": "marketing",
    "community": "community",
    "renewal": "billing",
    "cancellation": "billing",
}
CHANNELS = {
    "marketing": ("email", "social", "mail", "automated"),
    "inquiry": ("email", "phone", "chat", "web"),
    "response": ("email", "phone", "chat"),
    "sales_contact": ("phone", "in_person", "video"),
    "trial": ("web", "self_service"),
    "purchase": ("web", "web", "in_person", "phone", "self_service"),
    "delivery": ("automated",),
    "support_request": ("chat", "phone", "email", "self_service"),
    "complaint": ("phone", "email", "chat"),
    "complaint_resolved": ("phone", "email"),
    "survey": ("email", "web"),
    "follow_up": ("phone", "mail", "in_person"),
    "referral": ("web", "social"),
    "community": ("community", "event"),
    "renewal": ("web", "automated"),
    "cancellation": ("phone", "email", "web"),
}
PERSONAS = (
    ("browser", 0.18),
    ("one_time", 0.20),
    ("repeat", 0.22),
    ("referrer", 0.08),
    ("subscriber", 0.10),
    ("unhappy", 0.12),
    ("lapsed_returner", 0.10),
)
FIRST_NAMES = ("Ada", "Grace", "Linus", "Edsger", "Barbara", "Ken", "Margaret", "Alan", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Dijkstra", "Liskov", "Thompson", "Hamilton")


@dataclass
class _Customer:
    customer_id: str
    rng: random.Random
    start: datetime
    end: datetime
    messages: list[dict[str, Any]] = field(default_factory=list)
    sequence: int = 0

    def emit(self, kind: str, at: datetime, **attributes: Any) -> str | None:
        if at >= self.end:
            return None
        self.sequence += 1
        event_id = f"{SOURCES[kind]}-{self.customer_id}-{self.sequence}"
        message: dict[str, Any] = {
            "event_id": event_id,
            "customer_id": self.customer_id,
            "kind": kind,
            "channel": self.rng.choice(CHANNELS[kind]),
            "occurred_at": at.isoformat(timespec="seconds"),
            "source": SOURCES[kind],
            "attributes": attributes,
        }
        if self.sequence == 1:
            name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
            message["personal"] = {
                "name": name,
                "email": f"{name.lower().replace(' ', '.')}.{self.customer_id}@example.com",
            }
        self.messages.append(message)
        return event_id

    def days(self, low: float, high: float) -> timedelta:
        return timedelta(days=self.rng.uniform(low, high), minutes=self.rng.randrange(1440))

    def purchase(self, at: datetime, thank_you: bool = True) -> None:
        amount = f"{self.rng.lognormvariate(3.6, 0.7):.2f}"
        category = self.rng.choice(CATEGORIES)
        order = f"o-{self.customer_id}-{self.sequence + 1}"
        self.emit(
            "purchase",
            at,
            amount=amount,
            order_id=order,
            category=category,
            product=f"{category}-{self.rng.randrange(40)}",
        )
        self.emit("delivery", at + self.days(1, 4), order_id=order)
        if thank_you and self.rng.random() < 0.6:
            self.emit("follow_up", at + self.days(0.2, 2), action="thank_you_call")

    def inquiry(self, at: datetime) -> None:
        inquiry_id = self.emit("inquiry", at)
        if inquiry_id and self.rng.random() < 0.85:
            self.emit(
                "response", at + timedelta(hours=self.rng.uniform(0.5, 72)), in_reply_to=inquiry_id
            )

    def survey(self, at: datetime, low: int, high: int) -> None:
        self.emit("survey", at, score=self.rng.randint(low, high))

    def complaint(self, at: datetime, resolve: bool) -> None:
        complaint_id = f"cmp-{self.customer_id}-{self.sequence + 1}"
        self.emit(
            "complaint",
            at,
            complaint_id=complaint_id,
            reason=self.rng.choice(("late delivery", "damaged", "billing error", "rude staff")),
        )
        if resolve:
            self.emit("complaint_resolved", at + self.days(1, 20), complaint_id=complaint_id)


def simulate_population(
    customers: int = 2000, *, end: datetime, years: float = 2.0, seed: int = 7
) -> list[dict[str, Any]]:
    """Contract 1 messages of a whole population, in arrival order (mostly by time)."""
    rng = random.Random(seed)
    start = end - timedelta(days=365 * years)
    names = [name for name, _ in PERSONAS]
    weights = [weight for _, weight in PERSONAS]
    messages: list[dict[str, Any]] = []
    for number in range(customers):
        persona = rng.choices(names, weights)[0]
        first = start + timedelta(days=rng.uniform(0, 365 * years * 0.8))
        customer = _Customer(f"cust-{number:06d}", random.Random(rng.random()), start, end)
        _BEHAVIOURS[persona](customer, first)
        messages.extend(customer.messages)
    messages.sort(key=lambda m: m["occurred_at"])
    return _realistic_feed(messages, rng)


def _browser(c: _Customer, at: datetime) -> None:
    c.emit("marketing", at, campaign="spring")
    for _ in range(c.rng.randint(1, 5)):
        at += c.days(3, 40)
        kind = c.rng.choice(("inquiry", "trial", "community", "marketing", "sales_contact"))
        if kind == "inquiry":
            c.inquiry(at)
        else:
            c.emit(kind, at)


def _one_time(c: _Customer, at: datetime) -> None:
    c.emit("marketing", at, campaign="welcome")
    at += c.days(1, 20)
    c.purchase(at)
    if c.rng.random() < 0.5:
        c.survey(at + c.days(5, 15), 5, 10)


def _repeat(c: _Customer, at: datetime) -> None:
    c.inquiry(at)
    for _ in range(c.rng.randint(3, 9)):
        at += c.days(10, 70)
        c.purchase(at)
        roll = c.rng.random()
        if roll < 0.25:
            c.survey(at + c.days(3, 10), 6, 10)
        elif roll < 0.35:
            c.complaint(at + c.days(2, 6), resolve=c.rng.random() < 0.85)
        elif roll < 0.5:
            c.emit("support_request", at + c.days(1, 5))
        if c.rng.random() < 0.15:
            c.emit("community", at + c.days(1, 10))


def _referrer(c: _Customer, at: datetime) -> None:
    c.emit("sales_contact", at)
    at += c.days(2, 15)
    c.purchase(at)
    c.emit("referral", at + c.days(5, 40), referred="a friend")
    for _ in range(c.rng.randint(0, 4)):
        at += c.days(20, 90)
        c.purchase(at)


def _subscriber(c: _Customer, at: datetime) -> None:
    c.emit("trial", at)
    at += c.days(7, 14)
    c.purchase(at)
    at += c.days(25, 40)
    c.purchase(at, thank_you=False)
    c.emit("renewal", at + c.days(300, 340), plan="annual")
    c.emit("follow_up", at + c.days(100, 200), action=c.rng.choice(("newsletter", "card", "gift")))


def _unhappy(c: _Customer, at: datetime) -> None:
    c.purchase(at)
    at += c.days(5, 30)
    c.complaint(at, resolve=c.rng.random() < 0.4)
    c.survey(at + c.days(3, 10), 0, 5)
    at += c.days(10, 60)
    c.emit("cancellation", at, reason=c.rng.choice(("price", "service", "moved", "competitor")))
    if c.rng.random() < 0.4:  # comes back
        at += c.days(60, 240)
        c.inquiry(at)
        c.purchase(at + c.days(1, 10))


def _lapsed_returner(c: _Customer, at: datetime) -> None:
    c.purchase(at)
    at += c.days(370, 450)  # past the inactivity window
    c.emit("marketing", at - c.days(5, 30), campaign="win-back")
    c.purchase(at)
    c.purchase(at + c.days(20, 60))


_BEHAVIOURS = {
    "browser": _browser,
    "one_time": _one_time,
    "repeat": _repeat,
    "referrer": _referrer,
    "subscriber": _subscriber,
    "unhappy": _unhappy,
    "lapsed_returner": _lapsed_returner,
}


def _realistic_feed(messages: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """~2% of messages arrive late, ~1% twice; the caller adds broken ones if it wants."""
    feed: list[dict[str, Any]] = []
    late: list[tuple[int, dict[str, Any]]] = []
    for index, message in enumerate(messages):
        while late and late[0][0] <= index:
            feed.append(late.pop(0)[1])
        roll = rng.random()
        if roll < 0.02:
            late.append((index + rng.randint(5, 200), message))
            continue
        feed.append(message)
        if roll > 0.99:
            feed.append(message)  # a second delivery of the same event
    feed.extend(message for _, message in late)
    return feed


BROKEN_MESSAGES = (
    b'{"event_id": "broken-1", "customer_id": "cust-x", "kind": "purchase", ',
    b'{"event_id": "broken-2", "customer_id": "cust-x", "kind": "teleportation", '
    b'"channel": "web", "occurred_at": "2025-01-01T00:00:00Z", "source": "shop"}',
    b'{"event_id": "broken-3", "customer_id": "cust-x", "kind": "purchase", "channel": "web", '
    b'"occurred_at": "2025-01-01T00:00:00Z", "source": "shop", "attributes": {"amount": -5}}',
    b'{"event_id": "broken-4", "customer_id": "cust-x", "kind": "survey", "channel": "web", '
    b'"occurred_at": "2025-01-01T00:00:00Z", "source": "shop", "attributes": {"score": 11}}',
)


def as_json_lines(messages: list[dict[str, Any]]) -> Iterator[bytes]:
    for message in messages:
        yield json.dumps(message, separators=(",", ":")).encode()
