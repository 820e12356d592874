"""Audit benchmark (issue 5), on SQLite, in one run:

1. hash-chain and encryption overhead on ingest: `lifecycle import`'s batch path with
   the hash chain and personal data encrypted, beside the same path with hashing
   switched off (every event's hash a constant, so what remains is everything else the
   path does), and with encryption switched off too, alternating, best of --rounds
   each, CPU time of the recording process;
2. `audit verify` over a store of about --events events, sealed first, beside the raw rate
   of reading the same log without checking anything.

    .venv/bin/python -m bench.audit [--touchpoints 100000] [--events 1000000] [--rounds 3]

The workload is `lifecycle simulate`'s population (a first message with personal data
per customer, so encryption is on the path in both columns).
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bench.arguments import benchmark_parser
from lifecycle.audit.sealing import seal
from lifecycle.audit.verify import verify_store
from lifecycle.domain.hashchain import GENESIS_HASH, install_hasher
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.persistence.personal import PersonalDataVault
from lifecycle.persistence.recorders import read_log
from lifecycle.persistence.transcoding import orjson_hasher
from lifecycle.service.application import LifecycleApplication
from lifecycle.service.importer import import_lines
from lifecycle.settings import Settings
from lifecycle.simulation import as_json_lines, simulate_population

T = TypeVar("T")
KEY = "benchmark-audit-key-0123456789"
MESSAGES_PER_CUSTOMER = 9.2  # of the simulated population
EVENTS_PER_TOUCHPOINT = 1.31


def main() -> None:
    parser = benchmark_parser(__doc__, touchpoints=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as directory:
        work = Path(directory)
        ingest_overhead(work, args.touchpoints, args.rounds)
        verify_rate(work, args.events)


def workload(touchpoints: int, seed: int) -> list[bytes]:
    customers = max(1, round(touchpoints / MESSAGES_PER_CUSTOMER))
    messages = simulate_population(customers, end=datetime.now(UTC), years=2.0, seed=seed)
    return list(as_json_lines(messages))


def settings_in(work: Path, name: str) -> Settings:
    (work / name).mkdir()
    return Settings(
        database_url=f"sqlite:///{work / name / 'lifecycle.db'}",
        audit_hmac_key=KEY,
        log_format="json",
    )


def record(
    settings: Settings, lines: list[bytes], *, hashing: bool = True, encryption: bool = True
) -> tuple[int, float]:
    """Touchpoints recorded, and the CPU seconds the recording took."""
    app = Components(settings).application()
    try:
        with switched_off(hashing=not hashing, encryption=not encryption):
            gc.collect()
            started = time.process_time()
            report = import_lines(app, lines, rules=settings.message_rules, batch_size=5000)
            return report.recorded, time.process_time() - started
    finally:
        app.close()


def ingest_overhead(work: Path, touchpoints: int, rounds: int) -> None:
    lines = workload(touchpoints, seed=5)
    columns = ("with both", "without hashing", "without either")
    rates: dict[str, list[float]] = {label: [] for label in columns}
    for number in range(rounds):
        for label in reversed(columns):
            recorded, seconds = record(
                settings_in(work, f"ingest-{label.replace(' ', '-')}-{number}"),
                lines,
                hashing=label == "with both",
                encryption=label != "without either",
            )
            rates[label].append(recorded / seconds)
    best = {label: max(values) for label, values in rates.items()}
    print(
        f"ingest, SQLite, {len(lines):,} touchpoints, best of {rounds} "
        "(touchpoints per CPU second of the recording process; hashing and encryption of "
        "personal data on, hashing off, both off):"
    )
    for label, values in rates.items():
        listed = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {label:<16} {best[label]:>9,.0f}/s   (rounds: {listed})")
    both = 1 / best["with both"]
    print(
        f"  share of the recording's CPU: hashing "
        f"{(both - 1 / best['without hashing']) / both * 100:.1f}%, hashing and encryption "
        f"{(both - 1 / best['without either']) / both * 100:.1f}%\n"
    )


@contextmanager
def switched_off(*, hashing: bool, encryption: bool) -> Iterator[None]:
    """Hashing off: every event's hash a constant (the store then keeps each event as the
    transcoder writes it, as it would without a hash chain). Encryption off: personal
    data kept as it came. After the application is made: it installs its hasher."""
    protect = PersonalDataVault.protect
    if hashing:
        install_hasher(lambda _header, _state: GENESIS_HASH)
    if encryption:
        PersonalDataVault.protect = lambda _vault, touchpoints, _now: touchpoints  # type: ignore[method-assign]
    try:
        yield
    finally:
        install_hasher(orjson_hasher)
        PersonalDataVault.protect = protect  # type: ignore[method-assign]


def verify_rate(work: Path, events: int) -> None:
    touchpoints = round(events / EVENTS_PER_TOUCHPOINT)
    lines = workload(touchpoints, seed=9)
    settings = settings_in(work, "verify")
    recorded, _ = record(settings, lines)
    app = Components(settings).application()
    ledger = Components(settings).ledger()
    key = Components(settings).audit_key()
    assert key is not None
    try:
        total = app.recorder.max_notification_id() or 0
        sealing, outcome = timed(lambda: seal(app, ledger, key))
        reading, rows = timed(lambda: read_all(app))
        verifying, report = timed(lambda: verify_store(app, ledger, key))
        verifying_cpu, _ = timed(lambda: verify_store(app, ledger, key), clock=time.process_time)
    finally:
        ledger.close()
        app.close()
    assert report.events == rows == total == outcome.sealed
    print(f"audit, SQLite, {total:,} events ({recorded:,} touchpoints):")
    print(f"  read the log, no checks   {rows / reading:>9,.0f} events/s (wall clock)")
    print(f"  audit verify              {report.events / verifying:>9,.0f} events/s (wall clock)")
    print(
        f"  audit verify              {report.events / verifying_cpu:>9,.0f} events per CPU second"
    )
    print(f"  audit seal (first seal)   {outcome.sealed / sealing:>9,.0f} events/s (wall clock)")


def read_all(app: LifecycleApplication) -> int:
    rows, start = 0, None
    while page := read_log(app.recorder, start, 20_000):
        rows += len(page)
        start = page[-1][0] + 1
    return rows


def timed(
    action: Callable[[], T], clock: Callable[[], float] = time.perf_counter
) -> tuple[float, T]:
    started = clock()
    result = action()
    return clock() - started, result


if __name__ == "__main__":
    main()
