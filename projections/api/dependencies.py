"""What the routes share: as FastAPI dependencies, the read side the app serves, the
caller's role (from the bearer key), a read model's view once it reflects the position a
request asks for (``min_position``, waited for briefly, else 409: read-your-writes) and
the request's ``Answer``; the parameters several routes take; and the answer itself,
which names the position it reflects in its body and in the ``X-Projection-Position``
header, and is tagged (``ETag``) so that a client holding it already is answered 304.

Roles: ``reader`` reads the read models, ``auditor`` also the event log and personal
data, ``admin`` everything and the writes of people (account managers); ``publisher`` is
an upstream system: it records touchpoints and reads the summaries of its own writes."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from pydantic import AfterValidator, AwareDatetime

from lifecycle.service.application import LifecycleApplication
from lifecycle.service.group_commit import GroupCommit
from lifecycle.settings import Settings
from projections import metrics
from projections.api import models
from projections.api.errors import ApiError, NotModified
from projections.predictions import PredictionsView
from projections.views import SqlView

if TYPE_CHECKING:
    from lifecycle.audit.ledger import AuditKey, AuditLedger

POSITION_HEADER = "X-Projection-Position"
DISTRIBUTION = "relationship-lifecycle"
"""The installed distribution whose version renders the answers (see ``Answer``)."""
READERS = frozenset({"reader", "auditor", "admin"})
AUDITORS = frozenset({"auditor", "admin"})
ADMINS = frozenset({"admin"})
PUBLISHERS = frozenset({"publisher", "admin"})
SUMMARY_READERS = READERS | {"publisher"}
"""Who reads the summaries: readers, and publishers reading their own writes."""

_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Redriven(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class DeadLetters(Protocol):
    """The dead-letter topic as people see it and re-drive it, provided by the
    composition root (the read side never reaches Kafka itself)."""

    @property
    def topic(self) -> str: ...

    def listed(self, *, code: str | None = None) -> list[dict[str, Any]]:
        """Offset, time, key, error code and reason, source, redrive count of each."""
        ...

    def redrive(
        self, *, code: str | None = None, offsets: Collection[int] = (), again: bool = False
    ) -> Redriven: ...


@dataclass
class ReadSide:
    """What the API serves from: the views of the read models, the analytics
    predictions, and the application, which reads the event log (for auditors and
    business-time questions) and records what the API is given to write (touchpoints over
    HTTP, account managers) through the same paths as every other writer."""

    settings: Settings
    views: dict[str, SqlView]
    predictions: PredictionsView
    """Not a read model following the log (so not among ``views``, whose lag /readyz
    judges): each fit writes it."""
    application: LifecycleApplication
    close: Callable[[], None] = field(default=lambda: None)
    metrics_registries: Sequence[CollectorRegistry] = ()
    """Registries of other parts of this process (the Kafka edge's) that /metrics
    serves beside the read side's."""
    ledger: AuditLedger | None = None
    """The audit ledger, to say how far a customer's events are sealed and verified."""
    audit_key: AuditKey | None = None
    dead_letters: DeadLetters | None = None
    group_commit: GroupCommit = field(init=False)
    """How the application records touchpoints posted over HTTP: the requests waiting
    meanwhile share a transaction."""

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self.application)

    def head(self) -> int:
        head = self.application.recorder.max_notification_id() or 0
        metrics.EVENT_LOG_HEAD.set(head)
        return head

    def statuses(self) -> tuple[int, list[models.ProjectionStatus]]:
        head = self.head()
        statuses = []
        for name, view in self.views.items():
            position = view.position() or 0
            lag = max(head - position, 0)
            metrics.PROJECTION_POSITION.labels(name).set(position)
            metrics.PROJECTION_LAG.labels(name).set(lag)
            statuses.append(models.ProjectionStatus(name=name, position=position, lag=lag))
        return head, statuses

    def summary_terms(
        self, as_of: datetime, limits: Mapping[str, Any] | None = None
    ) -> tuple[object, ...]:
        """What an answer made of summaries depends on beside their rows (for its tag,
        see ``Answer``): the time its flags are judged at, their bounds set by settings,
        and which fit's ``p_alive`` the rows join in (the predictions' position)."""
        return as_of, sorted((limits or {}).items()), self.predictions.position()


# Parameters ---------------------------------------------------------------------------------


def bounded_time(value: datetime) -> datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value.astimezone(UTC)


def _bounded_date(value: date) -> date:
    if not _EARLIEST.date() <= value <= _LATEST.date():
        raise ValueError("must be between 1900-01-01 and 9000-01-01")
    return value


Time = Annotated[AwareDatetime, AfterValidator(bounded_time)]
Day = Annotated[date, AfterValidator(_bounded_date)]
CustomerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00]+$",
        description="the customer's id upstream, percent-encoded as one path segment ('/' as %2F)",
    ),
]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="wait (briefly) until the answer reflects at least this position; "
        "409 if it does not in time",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=1024, description="next_cursor of a page")]
AsOf = Annotated[Time | None, Query(description="judge time-dependent figures at (default now)")]
bearer = HTTPBearer(auto_error=False, description="an API key from LIFECYCLE_API_KEYS")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


# Dependencies -------------------------------------------------------------------------------
# async, all of them: they do no I/O (or hand it to the thread pool themselves), and a sync
# dependency would cost every request a hop to the thread pool.


async def read_side(request: Request) -> ReadSide:
    """The read side the app serves (``create_app`` keeps it in the app's state)."""
    served: ReadSide = request.app.state.read_side
    return served


ReadSideDep = Annotated[ReadSide, Depends(read_side)]


async def caller_role(read_side: ReadSideDep, credentials: Credentials) -> str | None:
    """The role of the key presented (None: no valid key); once per request, for the
    role check and the answer's tag alike."""
    return _role_of(read_side.settings.api_keys, credentials)


CallerRole = Annotated[str | None, Depends(caller_role)]


class Role:
    """The caller's role, by the key presented; 401 without a valid key, 403 for a role
    not ``allowed``."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    async def __call__(self, role: CallerRole) -> str:
        if role is None:
            raise ApiError(401, "unauthorized", "a valid API key is required (Bearer)")
        if role not in self.allowed:
            raise ApiError(403, "forbidden", f"the {role} role may not use this route")
        return role


reader = Depends(Role(READERS))
summary_reader = Depends(Role(SUMMARY_READERS))
auditor = Depends(Role(AUDITORS))
admin = Depends(Role(ADMINS))
publisher = Depends(Role(PUBLISHERS))


def key_fingerprint(credentials: HTTPAuthorizationCredentials | None) -> str:
    """What names the key a request was made with in the audit trail (an actor), without
    revealing it: the start of its SHA-256."""
    presented = credentials.credentials if credentials is not None else ""
    return "api key " + hashlib.sha256(presented.encode()).hexdigest()[:12]


def _role_of(
    keys: Mapping[str, str], credentials: HTTPAuthorizationCredentials | None
) -> str | None:
    if credentials is None:
        return None
    presented = credentials.credentials.encode()
    found = None
    # Every key compared, in constant time each: how long it takes tells nothing.
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), presented):
            found = role
    return found


class Reached:
    """The view of the read model ``name``, once it reflects the request's
    ``min_position`` (waited for up to ``api_wait_seconds``, else 409)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, read_side: ReadSideDep, min_position: MinPosition = None) -> SqlView:
        view = read_side.views[self.name]
        if min_position is None:
            return view
        try:
            # Waiting polls the database: in the thread pool, where the routes read it too.
            await run_in_threadpool(
                view.wait,
                view.tracking_name,
                min_position,
                timeout=read_side.settings.api_wait_seconds,
            )
        except TimeoutError:
            raise ApiError(
                409,
                "position_not_reached",
                f"{view.projection_name} has not reached position {min_position} yet",
            ) from None
        return view


# Answers ------------------------------------------------------------------------------------


class Positioned(Protocol):
    """A response model naming the position it reflects."""

    position: int

    def model_dump_json(self) -> str: ...


def respond(body: Positioned, status: int = 200) -> Response:
    """The answer, serialized once (FastAPI would validate a returned model again), with
    the position it reflects in a header too; untagged (probes: see ``Answer``)."""
    return Response(
        body.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={POSITION_HEADER: str(body.position)},
    )


class Answer:
    """A request's answer, tagged with an ``ETag`` that names everything it depends on:
    the position it reflects, the caller's role, the request's path and query, the
    release rendering it, and what a route adds (``depends_on``: the time or day it
    judges at when the query left that to the clock). A request whose ``If-None-Match``
    names the tag is answered 304, without a body.

    A route asks ``unless_unchanged`` first, with the read model's position: when the
    client holds the answer at that position, the 304 goes out before the answer is
    read or rendered. The answer's own tag is then made from the position it was read
    at (in the same snapshot as its rows), so a tag always names the body it came with.
    """

    def __init__(self, role: str | None, target: bytes, if_none_match: str | None) -> None:
        self._key = b"\0".join((_release().encode(), (role or "").encode(), target))
        self._held = _entity_tags(if_none_match) if if_none_match else frozenset()

    def etag(self, position: int, *depends_on: object) -> str:
        digest = hashlib.blake2b(self._key, digest_size=12)
        for value in depends_on:
            digest.update(b"\0" + str(value).encode())
        return f'"{position}-{digest.hexdigest()}"'

    def unless_unchanged(self, position: Callable[[], int | None], *depends_on: object) -> None:
        """Raise ``NotModified`` if the client holds the answer at the read model's
        ``position`` now (read only when the request names a tag at all)."""
        if self._held - {"*"}:
            # A tag held names an answer that existed at its position: if the position
            # has not moved, it exists still ("*" is judged on the answer read).
            current = position() or 0
            etag = self.etag(current, *depends_on)
            if etag in self._held:
                raise NotModified(self._headers(etag, current))

    def model(self, body: Positioned, *depends_on: object) -> Response:
        """``body``, serialized once (FastAPI would validate a returned model again)."""
        etag = self.etag(body.position, *depends_on)
        self._unless_held(etag, body.position)
        response = respond(body)
        response.headers["ETag"] = etag
        return response

    def json(self, body: bytes, position: int, *depends_on: object) -> Response:
        """An answer already serialized (see ``projections.api.summaries``)."""
        etag = self.etag(position, *depends_on)
        self._unless_held(etag, position)
        return Response(body, media_type="application/json", headers=self._headers(etag, position))

    def _unless_held(self, etag: str, position: int) -> None:
        if "*" in self._held or etag in self._held:
            raise NotModified(self._headers(etag, position))

    @staticmethod
    def _headers(etag: str, position: int) -> dict[str, str]:
        return {"ETag": etag, POSITION_HEADER: str(position)}


async def answer(request: Request, role: CallerRole) -> Answer:
    """The request's ``Answer``: tagged for the caller's role and the request's target
    as sent (raw path and query)."""
    scope = request.scope
    target = (scope.get("raw_path") or scope["path"].encode()) + b"?" + scope["query_string"]
    return Answer(role, target, request.headers.get("if-none-match"))


Answering = Annotated[Answer, Depends(answer)]


def _entity_tags(header: str) -> frozenset[str]:
    """The tags an ``If-None-Match`` names, compared weakly as RFC 9110 asks (a ``W/``
    prefix ignored)."""
    return frozenset(tag.strip().removeprefix("W/") for tag in header.split(","))


@functools.cache
def _release() -> str:
    # In the tag: a new release may render the same rows otherwise (fields added).
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unreleased"
