"""The ``ingest`` tag: touchpoints over HTTP (Contract 7), for upstream systems that
cannot run a Kafka producer; for publishers (and admins).

A request carries one Contract 1 message, a JSON array of up to ``MAX_ITEMS``, or JSON
lines (``application/x-ndjson``). Each item goes through the one validation gate of every
ingestion path (``lifecycle.domain.messages.parse_touchpoint``), and the valid ones are
recorded through the one batch path (``LifecycleApplication.record_batch``), in one
transaction, idempotent by (``customer_id``, ``event_id``); requests that arrive while
another is being written share the next transaction (``lifecycle.service.group_commit``),
so that many small requests do not each wait for a commit of their own. Every item is answered, in
order: ``recorded``, ``duplicate``, or ``rejected`` with the gate's code and reason (a
rejected item is the caller's to fix: nothing is dead-lettered). ``position`` is where
the batch's last event went in the log (the head when nothing was written): passed as
``min_position`` to a read route, it waits until the read model reflects the write.

A body that is not JSON is a 400; more than ``MAX_ITEMS`` items or a body over
``MAX_BODY_BYTES`` a 413 (read no further than the limit). Writers in other processes
(Kafka consumers) may be recording the same customers: the batch path retries a version
conflict from freshly read relationships; one that keeps conflicting is a 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from lifecycle.domain.clock import utc_now
from lifecycle.domain.errors import RejectedTouchpoint
from lifecycle.domain.messages import MESSAGE_VERSIONS, parse_touchpoint
from lifecycle.domain.touchpoints import Touchpoint
from lifecycle.service.application import ConcurrencyConflict
from projections.api import models
from projections.api.dependencies import ReadSide, ReadSideDep, publisher, respond
from projections.api.errors import ApiError, error_responses

MAX_ITEMS = 1_000
MAX_BODY_BYTES = 8 * 1024 * 1024
JSON_LINES = "application/x-ndjson"
REJECTED = "rejected"
_MAX_ID = 128

_VERSION_SCHEMAS = [
    version.adapter.json_schema(ref_template="#/components/schemas/{model}")
    for version in MESSAGE_VERSIONS.values()
]
MESSAGE_COMPONENTS: dict[str, Any] = {
    name: definition
    for schema in _VERSION_SCHEMAS
    for name, definition in schema.pop("$defs").items()
}
"""The schemas the message versions refer to, for the OpenAPI document's components."""
MESSAGE_SCHEMA: dict[str, Any] = {"oneOf": _VERSION_SCHEMAS}
"""A Contract 1 message of any version the engine accepts."""

router = APIRouter(tags=["ingest"])


@router.post(
    "/v1/touchpoints",
    response_model=models.IngestResponse,
    responses=error_responses(400, 401, 403, 413, 503),
    dependencies=[publisher],
    summary="Record touchpoints: one Contract 1 message, a JSON array of up to 1,000, or "
    "JSON lines",
    description="Validated by the same gate as Kafka and `lifecycle import`, recorded by the "
    "same batch path, idempotent by (customer_id, event_id). One result per item, in order; "
    "rejected items are answered, not dead-lettered. `position`: pass as `min_position` to "
    "read your writes. 400: the body is not JSON; 413: more than 1,000 items or over 8 MiB.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            MESSAGE_SCHEMA,
                            {"type": "array", "maxItems": MAX_ITEMS, "items": MESSAGE_SCHEMA},
                        ]
                    }
                },
                JSON_LINES: {
                    "schema": {
                        "type": "string",
                        "description": "JSON lines: one Contract 1 message per line",
                    }
                },
            },
        }
    },
)
async def post_touchpoints(request: Request, read_side: ReadSideDep) -> Response:
    body = await _body(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    items = _lines(body) if content_type == JSON_LINES else _json_items(body)
    answer = await run_in_threadpool(_record, read_side, items)
    return respond(answer)


@dataclass(frozen=True, slots=True)
class _Item:
    """One item of a request: its bytes, and its decoded JSON when already at hand."""

    raw: bytes
    value: Any = None


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(f"the body is {declared} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large("the body is larger")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str) -> ApiError:
    return ApiError(413, "too_large", f"{what}; the limit is {MAX_BODY_BYTES} bytes")


def _json_items(body: bytes) -> list[_Item]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {error}") from None
    if not isinstance(value, list):
        return [_Item(body, value)]
    _check_count(len(value))
    # Each message through the gate as bytes, as it would come from Kafka or a file.
    return [_Item(orjson.dumps(item), item) for item in value]


def _lines(body: bytes) -> list[_Item]:
    items = [_Item(line) for line in (raw.strip() for raw in body.split(b"\n")) if line]
    _check_count(len(items))
    return items


def _check_count(count: int) -> None:
    if count > MAX_ITEMS:
        raise ApiError(413, "too_many_items", f"{count} items; the limit is {MAX_ITEMS}")


def _record(read_side: ReadSide, items: list[_Item]) -> models.IngestResponse:
    rules = read_side.settings.message_rules
    now = utc_now()
    touchpoints: list[Touchpoint] = []
    outcomes: list[Touchpoint | RejectedTouchpoint] = []
    for item in items:
        try:
            touchpoint = parse_touchpoint(item.raw, now, rules)
        except RejectedTouchpoint as rejection:
            outcomes.append(rejection)
            continue
        touchpoints.append(touchpoint)
        outcomes.append(touchpoint)
    try:
        recorded = read_side.group_commit.record(touchpoints) if touchpoints else None
    except ConcurrencyConflict as conflict:
        raise ApiError(
            503, "conflict", f"{conflict}; nothing was recorded: send it again"
        ) from None
    statuses = iter(recorded.statuses if recorded is not None else ())
    results = []
    for item, result in zip(items, outcomes, strict=True):
        if isinstance(result, Touchpoint):
            results.append(
                models.IngestResult(
                    event_id=result.event_id,
                    customer_id=result.customer_id,
                    status=next(statuses),
                    error_code=None,
                    reason=None,
                )
            )
        else:
            event_id, customer_id = _named_ids(item)
            results.append(
                models.IngestResult(
                    event_id=event_id,
                    customer_id=customer_id,
                    status=REJECTED,
                    error_code=result.code,
                    reason=result.reason,
                )
            )
    position = recorded.position if recorded is not None else None
    if position is None:
        position = read_side.head()
    return models.IngestResponse(position=position, results=results)


def _named_ids(item: _Item) -> tuple[str | None, str | None]:
    """The event_id and customer_id a rejected item names, where it names them fit to
    echo (strings of Contract 1's length)."""
    value = item.value
    if value is None:
        try:
            value = orjson.loads(item.raw)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(value, dict):
        return None, None
    return _id(value.get("event_id")), _id(value.get("customer_id"))


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_ID else None
