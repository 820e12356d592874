"""Exports an auditor can verify offline: JSON lines of Contract 3 events with their
positions and hash-chain links, plus a signed manifest.

``DIR/events.jsonl`` holds one ``RelationshipEvent`` per line (schema
``relationship-event.v2.schema.json``; ``data`` as stored), in log order.
``DIR/manifest.json`` says how many events, the first and last position, the running
hash over the lines' positions and hashes (the global chain's rule, so a complete export
ends on the global head), the filters, the latest checkpoint, and an HMAC over all of it.

``verify_export`` needs only the directory and the key: it recomputes every line's hash
from its Contract 3 fields (datetimes are rebuilt from the domain's event classes), checks
each relationship's links within the export, the manifest's counts, head and signature,
and — for a complete export — that the chain reaches the signed checkpoint's head.
Exporting runs that same check on what it wrote and refuses an export that fails it.

Fields of a line outside ``data`` (event_id, customer_id, relationship_id, occurred_at)
are checked against what the hash covers; ``personal`` is a view and is not covered.

Personal data: ``data.personal`` is what was recorded (ciphertext: the hashes cover it);
``personal`` shows ``{"erased": true}`` once the customer was forgotten and otherwise
``{"encrypted": true}``, or the decrypted fields with ``include_personal`` — then the
export file holds personal data that a later erasure cannot reach.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle.audit.chain import GLOBAL_GENESIS, advance, content_hash
from lifecycle.audit.history import relationship_events
from lifecycle.audit.ledger import AuditKey, AuditLedger, Checkpoint
from lifecycle.audit.sealing import CHECKPOINT_PURPOSE
from lifecycle.audit.verify import Divergence, TamperingDetected
from lifecycle.domain.errors import LifecycleError, RelationshipNotFound
from lifecycle.domain.hashchain import GENESIS_HASH
from lifecycle.domain.outbound import BUSINESS_TIME_FIELDS, outbound_event_id
from lifecycle.domain.relationship import RELATIONSHIP_EVENTS, relationship_id
from lifecycle.domain.streams import CHAINED_EVENT_CLASSES
from lifecycle.persistence.recorders import LogRow, read_log, stream_log
from lifecycle.persistence.topics import stored_topics
from lifecycle.service.application import LifecycleApplication

EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"
MANIFEST_PURPOSE = "export-manifest"
PAGE = 5_000
RELATIONSHIP_EVENT_TYPES = frozenset(cls.__name__ for cls in RELATIONSHIP_EVENTS)


class InvalidExport(LifecycleError):
    code = "invalid_export"


class ExportManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["lifecycle-export/1"] = "lifecycle-export/1"
    events: int = Field(ge=0)
    first_position: int | None
    last_position: int | None
    head: str = Field(description="running hash over the lines' positions and hashes, hex")
    complete: bool = Field(description="every event of the log up to last_position is here")
    customer: str | None = None
    since: datetime | None = Field(default=None, description="recorded at or after")
    until: datetime | None = Field(default=None, description="recorded at or before")
    checkpoint: Checkpoint | None = Field(description="the latest checkpoint when exported")
    exported_at: datetime
    signature: str = Field(description="HMAC-SHA256 over the other fields")

    def payload(self) -> bytes:
        fields = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ExportReport:
    events: int
    streams: int
    complete: bool
    checkpoint: int | None
    """The sequence of the checkpoint the export was verified against, if any."""
    sealed_events: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_events(
    app: LifecycleApplication,
    ledger: AuditLedger,
    key: AuditKey,
    out: Path,
    *,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_personal: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ExportManifest:
    """Write ``out/events.jsonl`` and ``out/manifest.json``, then verify them."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = ledger.latest_checkpoint()
    head = GLOBAL_GENESIS
    count = 0
    first: int | None = None
    last: int | None = None
    with (out / EVENTS_FILE).open("wb") as lines:
        for page in _pages(app, customer_id):
            events = relationship_events(
                app, page, app.vault, reveal=include_personal, as_stored=True
            )
            for event in events:
                if (since is not None and event.recorded_at < since) or (
                    until is not None and event.recorded_at > until
                ):
                    continue
                assert event.position is not None and event.hash is not None
                lines.write(event.model_dump_json().encode() + b"\n")
                head = advance(head, event.position, bytes.fromhex(event.hash))
                first = event.position if first is None else first
                last = event.position
                count += 1
            if on_progress is not None:
                on_progress(len(page))
    unsigned = {
        "events": count,
        "first_position": first,
        "last_position": last,
        "head": head.hex(),
        "complete": customer_id is None and since is None and until is None,
        "customer": customer_id,
        "since": since,
        "until": until,
        "checkpoint": checkpoint,
        "exported_at": datetime.now(UTC),
    }
    draft = ExportManifest(**unsigned, signature="")
    manifest = draft.model_copy(update={"signature": key.sign(MANIFEST_PURPOSE, draft.payload())})
    (out / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    try:
        verify_export(out, key)
    except TamperingDetected:
        # An export that does not verify must not be mistaken for one.
        (out / EVENTS_FILE).unlink(missing_ok=True)
        (out / MANIFEST_FILE).unlink(missing_ok=True)
        raise
    return manifest


def _pages(app: LifecycleApplication, customer_id: str | None) -> Iterator[list[LogRow]]:
    if customer_id is not None:
        rows = stream_log(app.recorder, relationship_id(customer_id))
        if not rows:
            raise RelationshipNotFound(f"no relationship for customer {customer_id!r}")
        yield rows
        return
    start: int | None = None
    while rows := read_log(app.recorder, start, PAGE):
        yield rows
        start = rows[-1][0] + 1


# Offline verification ---------------------------------------------------------------


def verify_export(directory: Path, key: AuditKey | None) -> ExportReport:
    """Check an export against itself, its signed manifest and the signed checkpoint."""
    manifest = _read_manifest(directory)
    if key is None:
        raise InvalidExport(
            "LIFECYCLE_AUDIT_HMAC_KEY is not set: it is needed to check the manifest's signature"
        )
    if not key.verifies(MANIFEST_PURPOSE, manifest.payload(), manifest.signature):
        _fail_export("the manifest does not carry a valid signature (altered, or another key)")
    checkpoint = manifest.checkpoint
    if checkpoint is not None and not key.verifies(
        CHECKPOINT_PURPOSE, checkpoint.payload(), checkpoint.signature
    ):
        _fail_export(f"checkpoint #{checkpoint.sequence} in the manifest has no valid signature")
    streams: dict[str, tuple[int, str]] = {}
    head = GLOBAL_GENESIS
    count = sealed = 0
    first: int | None = None
    previous_position: int | None = None
    checkpoint_reached = False
    try:
        source = (directory / EVENTS_FILE).open("rb")
    except OSError as error:
        raise InvalidExport(f"cannot read {directory / EVENTS_FILE}: {error.strerror}") from None
    with source:
        for number, raw in enumerate(source, start=1):
            line = _ExportedLine.parse(raw, number)
            if previous_position is not None and line.position <= previous_position:
                line.fail(f"position {line.position} does not follow {previous_position}")
            if line.recompute_hash() != line.hash:
                line.fail("its content does not match its hash (the line was edited)")
            line.check_derived_fields()
            last_version, last_hash = streams.get(line.relationship_id, (0, GENESIS_HASH))
            if line.relationship_id in streams or line.version == 1:
                if line.version != last_version + 1:
                    line.fail(
                        f"follows version {last_version} of its relationship in the export "
                        f"(expected {last_version + 1}): lines were removed or reordered"
                    )
                if line.previous_hash != last_hash:
                    line.fail("its previous_hash is not the hash of the line before it")
            streams[line.relationship_id] = (line.version, line.hash)
            head = advance(head, line.position, bytes.fromhex(line.hash))
            first = line.position if first is None else first
            previous_position = line.position
            count += 1
            if checkpoint is not None and line.position <= checkpoint.position:
                sealed += 1
            if (
                manifest.complete
                and checkpoint is not None
                and line.position == checkpoint.position
            ):
                checkpoint_reached = True
                if head.hex() != checkpoint.head:
                    line.fail(
                        "the export up to here does not hash to the signed head of checkpoint "
                        f"#{checkpoint.sequence}"
                    )
    if count != manifest.events or first != manifest.first_position:
        _fail_export(
            f"the manifest lists {manifest.events} events from position "
            f"{manifest.first_position}; the file holds {count} from position {first}"
        )
    if previous_position != manifest.last_position or head.hex() != manifest.head:
        _fail_export("the lines do not hash to the manifest's head (lines added, removed or moved)")
    verified_against = None
    if manifest.complete and checkpoint is not None:
        # The checkpoint was read before the log: a complete export reaches it.
        if not checkpoint_reached:
            _fail_export(
                f"the export never reaches position {checkpoint.position}, which checkpoint "
                f"#{checkpoint.sequence} sealed: events are missing"
            )
        verified_against = checkpoint.sequence
    return ExportReport(
        events=count,
        streams=len(streams),
        complete=manifest.complete,
        checkpoint=verified_against,
        sealed_events=sealed,
    )


def _read_manifest(directory: Path) -> ExportManifest:
    path = directory / MANIFEST_FILE
    try:
        return ExportManifest.model_validate_json(path.read_bytes())
    except OSError as error:
        raise InvalidExport(f"cannot read {path}: {error.strerror}") from None
    except ValidationError as error:
        raise InvalidExport(
            f"{path} is not an export manifest: {error.errors()[0]['msg']}"
        ) from None


def _fail_export(problem: str) -> typing.NoReturn:
    raise TamperingDetected(Divergence(problem))


@dataclass(frozen=True)
class _ExportedLine:
    number: int
    event_id: str
    relationship_id: str
    customer_id: str | None
    version: int
    event_type: str
    position: int
    hash: str
    previous_hash: str
    occurred_at: str
    recorded_at: str
    data: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes, number: int) -> _ExportedLine:
        try:
            line = orjson.loads(raw)
            return cls(
                number=number,
                event_id=str(line["event_id"]),
                relationship_id=UUID(line["relationship_id"]).hex,
                customer_id=line.get("customer_id"),
                version=int(line["version"]),
                event_type=str(line["type"]),
                position=int(line["position"]),
                hash=str(line["hash"]),
                previous_hash=str(line["previous_hash"]),
                occurred_at=str(line["occurred_at"]),
                recorded_at=str(line["recorded_at"]),
                data=dict(line["data"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise TamperingDetected(
                Divergence(f"line {number} is not an exported event ({type(error).__name__})")
            ) from None

    def check_derived_fields(self) -> None:
        """The fields of a line outside ``data`` that the hash does not cover are derived
        from what it does cover: they must agree."""
        customer_id = self.data.get("customer_id")
        if self.customer_id != customer_id:
            self.fail("its customer_id differs from the one its data records")
        if customer_id is None:
            # A stream that is not a relationship: its events are not a relationship's.
            if self.event_type in RELATIONSHIP_EVENT_TYPES:
                self.fail("a relationship's event without a customer_id")
        elif not isinstance(customer_id, str) or relationship_id(customer_id).hex != (
            self.relationship_id
        ):
            self.fail("its relationship_id is not the customer's")
        rid = UUID(self.relationship_id)
        if self.event_id != str(outbound_event_id(rid, self.version)):
            self.fail("its event_id is not derived from its relationship and version")
        field = BUSINESS_TIME_FIELDS.get(self.event_type)
        business = self.data.get(field) if field is not None else self.recorded_at
        try:
            same = isinstance(business, str) and datetime.fromisoformat(
                business
            ) == datetime.fromisoformat(self.occurred_at)
        except ValueError:
            same = False
        if not same:
            self.fail("its occurred_at differs from the business time its data records")

    def recompute_hash(self) -> str:
        """Rebuild the event's canonical body from its Contract 3 fields and hash it."""
        datetimes, created_by = _event_shape(self.event_type)
        if datetimes is None:
            self.fail(f"unknown event type {self.event_type!r}")
        body = dict(self.data)
        try:
            for name in datetimes:
                value = body.get(name)
                if isinstance(value, str):
                    body[name] = _wrapped(value)
            body["timestamp"] = _wrapped(self.recorded_at)
        except ValueError:
            self.fail("a time in it is not an ISO 8601 time")
        if not created_by:
            return content_hash(
                self.previous_hash, self.relationship_id, self.version, self.event_type, body
            )
        # The first event hashes the aggregate's topic as it was when recorded: the
        # line does not carry it (Contract 3), so each topic the class has had is tried.
        hashes = []
        for topic in created_by:
            body["originator_topic"] = topic
            hashes.append(
                content_hash(
                    self.previous_hash, self.relationship_id, self.version, self.event_type, body
                )
            )
        return self.hash if self.hash in hashes else hashes[0]

    def fail(self, problem: str) -> typing.NoReturn:
        raise TamperingDetected(
            Divergence(
                f"line {self.number}: {problem}",
                position=self.position,
                customer_id=self.customer_id,
                relationship_id=str(UUID(self.relationship_id)),
                version=self.version,
            )
        )


def _wrapped(iso: str) -> dict[str, str]:
    return {"_type_": "datetime_iso", "_data_": datetime.fromisoformat(iso).isoformat()}


@lru_cache(maxsize=32)
def _event_shape(event_type: str) -> tuple[frozenset[str] | None, tuple[str, ...]]:
    """The event class's datetime fields (Contract 3 writes them as text) and, for an
    event that creates its stream, every topic its aggregate has been stored under (its
    state also holds the aggregate's topic); None for an unknown event type."""
    cls = CHAINED_EVENT_CLASSES.get(event_type)
    if cls is None:
        return None, ()
    hints = typing.get_type_hints(cls)
    datetimes = frozenset(
        name
        for name, hint in hints.items()
        if name != "timestamp"
        and (
            hint is datetime
            or (
                typing.get_origin(hint) in (typing.Union, types.UnionType)
                and datetime in typing.get_args(hint)
            )
        )
    )
    if "originator_topic" not in hints:
        return datetimes, ()
    aggregate = getattr(sys.modules[cls.__module__], cls.__qualname__.partition(".")[0])
    return datetimes, stored_topics(aggregate)
