"""Evolution benchmark (issue 10): what evolving costs, one part at a time.

    .venv/bin/python -m bench.evolution [--touchpoints 1000000] [--customers 100000]
                                        [--only a ...] [--rounds 2]

(a) Upcasting on read: a rebuild of every read model over a store whose events were all
    written at class version 1 (as release 0.1 wrote them: no class version, no
    ``producer`` or ``correlation_id``; upcast as they are read) against the same
    population written at version 2, in the same run. Also the raw read (decoding every
    event, no read model) of each, where the upcast's cost shows first.

The population is the projection benchmark's store (``bench.projections.build_store``,
kept in bench/data/); both stores measured are compacted copies of it, one as it was
written (version 2), one with every event of a versioned class rewritten to its
version 1 form (hashes left as they were: a rebuild does not check them; ``audit
verify`` would name the first rewritten event). Version 1 events are smaller (no class
version, producer or correlation id), so the upcast's own cost is measured too: the
CPU time of decoding version 1 events upcast and as stored (the classes said to be at
version 1, the library upcasts nothing), alternating in one process. Each other
measurement runs in its own process; the stores alternate for ``--rounds`` rounds and
the best of each is kept, because the shared machine's load drifts.

(b) ``policy diff`` of the sample candidate policy (lifecycle/domain/policies/
    candidate-example.toml) against the adopted v1 (inactivity not judged), in
    events/s, beside a rebuild of
    every read model (``lifecycle replay``) of the same store, both sharing the
    customers between the configured number of processes; the two alternate for
    ``--rounds`` rounds and the best of each is kept, as the machine's load drifts.
(c) ``policy adopt`` of the same candidate: relationships re-evaluated per second, on a
    copy of the store (an adoption writes), in this process.

The store is the projection benchmark's (``bench.projections.build_store``: SQLite, built
once through ``record_batch`` and kept in bench/data/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.arguments import benchmark_parser
from bench.projections import DATA, build_store
from lifecycle.domain.clock import utc_now
from lifecycle.domain.policy import PolicyText
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.logs import configure_logging
from lifecycle.settings import Settings

VERSION_2_FIELDS = ("class_version", "producer", "correlation_id")
"""What version 2 added to the stored state of the versioned classes."""
PAGE = 50_000


# (a) Upcasting on read ------------------------------------------------------------------


def _versioned_classes() -> tuple[type, ...]:
    from lifecycle.domain.relationship import Relationship

    return (
        Relationship.RelationshipStarted,
        Relationship.TouchpointRecorded,
        Relationship.StageChanged,
    )


def copy_of(url: str, version: int) -> str:
    """A compacted copy of the store at ``url`` with every event of a versioned class as
    class ``version`` stores it (made once, then reused). Both stores compared are such
    copies, so that they lie alike in their files."""
    from eventsourcing.utils import get_topic

    from lifecycle.persistence.transcoding import OrjsonTranscoder

    source = Path(url.removeprefix("sqlite:///"))
    target = DATA / f"{source.parent.name}-v{version}" / "lifecycle.db"
    done = target.with_name("complete")
    if done.exists():
        return f"sqlite:///{target}"
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob("*.db*"):
        stale.unlink()
    started = time.perf_counter()
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    db = sqlite3.connect(target)
    count = 0
    if version == 1:
        transcoder = OrjsonTranscoder()
        versioned = [get_topic(cls) for cls in _versioned_classes()]
        topics = ",".join("?" * len(versioned))
        last = 0
        while page := db.execute(
            f"SELECT rowid, state FROM stored_events WHERE rowid > ? AND topic IN ({topics}) "
            "ORDER BY rowid LIMIT ?",
            (last, *versioned, PAGE),
        ).fetchall():
            rewritten = []
            for rowid, state in page:
                fields = transcoder.decode(state)
                for name in VERSION_2_FIELDS:  # a touchpoint keeps its source, as v1 had it
                    fields.pop(name, None)
                rewritten.append((transcoder.encode(fields), rowid))
            db.executemany("UPDATE stored_events SET state = ? WHERE rowid = ?", rewritten)
            db.commit()
            count += len(page)
            last = page[-1][0]
    db.execute("VACUUM")
    db.close()
    done.write_text(f"{count}\n")
    seconds = time.perf_counter() - started
    print(f"copied the store at version {version} ({count} events rewritten) in {seconds:.0f} s")
    return f"sqlite:///{target}"


def measure(url: str, what: str) -> dict[str, float]:
    """One measurement, in this process: a rebuild of every read model, or the raw read."""
    from lifecycle.settings import Settings
    from projections.rebuild import rebuild

    settings = Settings(database_url=url, log_level="warning")
    if what == "upcast-cpu":
        return _upcast_cpu(settings)
    if what == "rebuild":
        outcome = rebuild(Components(settings))
        return {"events": outcome.events, "seconds": outcome.seconds}
    app = Components(settings).application()
    started, cpu = time.perf_counter(), time.process_time()
    events, start = 0, 1
    while page := app.recorder.select_notifications(start, 2_000):
        for notification in page:
            app.mapper.to_domain_event(notification)
        events += len(page)
        start = page[-1].id + 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    app.close()
    return {"events": events, "seconds": seconds, "cpu_seconds": cpu}


def _upcast_cpu(settings: Any, rounds: int = 7) -> dict[str, float]:
    """CPU time per event of decoding the first events of a version 1 store, upcast and
    not (the classes said to be at version 1: the library reads the events as they are),
    alternating in this one process; the least of each."""
    app = Components(settings).application()
    notifications = app.recorder.select_notifications(1, 100_000)
    to_domain_event = app.mapper.to_domain_event
    classes = _versioned_classes()
    best = {"upcast_us": float("inf"), "as_stored_us": float("inf")}
    for _ in range(rounds):
        for key, version in (("upcast_us", 2), ("as_stored_us", 1)):
            for cls in classes:
                cls.class_version = version
            started = time.process_time()
            for notification in notifications:
                to_domain_event(notification)
            per_event = (time.process_time() - started) / len(notifications) * 1e6
            best[key] = min(best[key], per_event)
    app.close()
    return best


def _measured(url: str, what: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.evolution", "--measure", what, "--url", url],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_written_at_version_2(url: str) -> None:
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    (state,) = db.execute(
        "SELECT state FROM stored_events WHERE topic LIKE '%TouchpointRecorded' LIMIT 1"
    ).fetchone()
    db.close()
    if b'"class_version":2' not in state:
        raise SystemExit(
            f"{url} was built before events had versions: delete its directory to rebuild it"
        )


def _mean_size(url: str) -> float:
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    (size,) = db.execute("SELECT AVG(LENGTH(state)) FROM stored_events").fetchone()
    db.close()
    return float(size)


def part_a(args: argparse.Namespace) -> None:
    """(a) A rebuild over version 1 events, upcast on read, against version 2 events."""
    built = build_store(args.touchpoints, args.customers)
    _check_written_at_version_2(built)
    v1, v2 = copy_of(built, 1), copy_of(built, 2)
    print(
        f"\n(a) upcasting on read: {args.touchpoints:,} touchpoints over "
        f"{args.customers:,} customers (SQLite), best of {args.rounds} rounds"
    )
    print(
        f"mean stored event: version 1 {_mean_size(v1):.0f} bytes, "
        f"version 2 {_mean_size(v2):.0f} bytes"
    )
    print(f"{'':<48} {'events':>10} {'seconds':>8} {'events/s':>10} {'per CPU s':>10}")
    for what, label in (("raw", "raw read"), ("rebuild", "rebuild of every read model")):
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for version, url in (("v1", v1), ("v2", v2)):
                result = _measured(url, what)
                result["rate"] = result["events"] / result["seconds"]
                if version not in best or result["rate"] > best[version]["rate"]:
                    best[version] = result
        for version, stored in (("v1", "version 1, upcast"), ("v2", "version 2")):
            r = best[version]
            # A rebuild's processes are not this one's: CPU time only for the raw read.
            per_cpu = f"{r['events'] / r['cpu_seconds']:>10,.0f}" if "cpu_seconds" in r else ""
            print(
                f"{label + ', ' + stored:<48} {r['events']:>10,.0f} {r['seconds']:>8.1f} "
                f"{r['rate']:>10,.0f} {per_cpu}"
            )
        ratio = best["v1"]["rate"] / best["v2"]["rate"]
        print(f"{label}: version 1 events, upcast, at {ratio:.1%} of the version 2 rate\n")
    cpu = _measured(v1, "upcast-cpu")
    print(
        f"decoding a version 1 event, CPU time: {cpu['upcast_us']:.2f} µs upcast, "
        f"{cpu['as_stored_us']:.2f} µs as stored: the upcast alone costs "
        f"{cpu['upcast_us'] / cpu['as_stored_us'] - 1:+.1%} of a decode"
    )


# (b) and (c) The policy: what-if and adoption -------------------------------------------

CANDIDATE = "candidate-example.toml"


def _store(args: argparse.Namespace) -> str:
    configure_logging("console", "warning")
    return build_store(args.touchpoints, args.customers)


def candidate() -> PolicyText:
    return PolicyText.builtin(CANDIDATE, f"lifecycle/domain/policies/{CANDIDATE}")


def policy_diff_against_rebuild(url: str, rounds: int) -> None:
    """(b) ``policy diff`` events/s against a rebuild's, on the same store."""
    from projections.rebuild import rebuild
    from projections.whatif import diff_policies

    settings = Settings(database_url=url, log_level="warning")
    app = Components(settings).application()
    stream = app.policy_stream()
    app.close()
    assert stream is not None, "the store was recorded: a policy was adopted"
    adopted = stream.adopted.document()
    rebuilds, diffs = [], []
    for _ in range(rounds):
        rebuilt = rebuild(Components(settings))
        rebuilds.append((rebuilt.events_per_second, rebuilt.seconds, len(rebuilt.shards)))
        found = diff_policies(Components(settings), adopted, candidate(), inactive_at=None)
        diffs.append((found.events_per_second, found.seconds, found.parts))
    rebuild_rate, rebuild_seconds, processes = max(rebuilds)
    diff_rate, diff_seconds, diff_processes = max(diffs)
    events = found.events
    print(f"(b) policy diff against a rebuild of every read model, {events:,} events:")
    print(
        f"  rebuild (all read models)  {rebuild_rate:>10,.0f} events/s  "
        f"{rebuild_seconds:6.1f} s  {processes} processes   "
        f"(rounds: {', '.join(f'{r:,.0f}' for r, _, _ in rebuilds)})"
    )
    print(
        f"  policy diff                {diff_rate:>10,.0f} events/s  "
        f"{diff_seconds:6.1f} s  {diff_processes} processes   "
        f"(rounds: {', '.join(f'{r:,.0f}' for r, _, _ in diffs)})"
    )
    comparison = found.comparison
    print(
        f"  diff / rebuild: {diff_rate / rebuild_rate:.2f}; {comparison.relationships:,} "
        f"relationships, {len(comparison.differing):,} would be in another stage\n"
    )


def adoption_rate(url: str, rounds: int) -> None:
    """(c) ``policy adopt``: relationships re-evaluated per second."""
    del rounds  # an adoption changes its copy of the store: one round per copy
    source = Path(url.removeprefix("sqlite:///")).parent
    with tempfile.TemporaryDirectory(dir=source.parent) as scratch:
        copy = Path(scratch) / "store"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("lifecycle.*.db*"))
        settings = Settings(database_url=f"sqlite:///{copy / 'lifecycle.db'}", log_level="warning")
        app = Components(settings).application()
        try:
            started = time.perf_counter()
            outcome = app.adopt_policy(candidate(), actor="bench", reason="bench", at=utc_now())
            seconds = time.perf_counter() - started
        finally:
            app.close()
    print(f"(c) policy adopt of {CANDIDATE}, {outcome.reevaluated:,} relationships:")
    print(
        f"  {outcome.reevaluated / seconds:,.0f} relationships re-evaluated/s  {seconds:.1f} s; "
        f"{outcome.moved:,} moved to another stage\n"
    )


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "a": part_a,
    "b": lambda args: policy_diff_against_rebuild(_store(args), args.rounds),
    "c": lambda args: adoption_rate(_store(args), args.rounds),
}


def main() -> None:
    parser = benchmark_parser(__doc__, touchpoints=1_000_000, customers=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per store")
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), help="parts to run")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.url, args.measure)))
        return
    for name in args.only or sorted(PARTS):
        PARTS[name](args)


if __name__ == "__main__":
    main()
