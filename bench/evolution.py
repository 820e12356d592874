"""Evolution benchmark (issue 10), one part per function, each measuring its baseline
in the same run:

    .venv/bin/python -m bench.evolution [--touchpoints 1000000] [--customers 100000]
                                        [--only b c] [--rounds 2]

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
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.projections import build_store
from lifecycle.domain.messages import utc_now
from lifecycle.domain.policy import PolicyText
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.logs import configure_logging
from lifecycle.settings import Settings

CANDIDATE = "candidate-example.toml"


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
        rebuilds.append((rebuilt.events_per_second, rebuilt.seconds, len(rebuilt.parts)))
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


PARTS: dict[str, Callable[[str, int], None]] = {
    "b": policy_diff_against_rebuild,
    "c": adoption_rate,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), metavar="PART")
    args = parser.parse_args()
    configure_logging("console", "warning")
    url = build_store(args.touchpoints, args.customers)
    print(f"store: {args.touchpoints:,} touchpoints over {args.customers:,} customers (SQLite)\n")
    for part in args.only or sorted(PARTS):
        PARTS[part](url, args.rounds)


if __name__ == "__main__":
    main()
