"""Start-up benchmark (issue 9): wall time of `lifecycle --help` and of `lifecycle state X`
on a small SQLite store, each run --runs times as a subprocess, beside the baseline of
the same interpreter starting and doing nothing (`python -c pass`), in one run. The CPU
time of each run's process is printed too: on a machine shared with other work it moves
less than the wall time.

    .venv/bin/python -m bench.startup [--runs 20]

The store is made here with `lifecycle import` of a few touchpoints. Each command runs
once before it is timed, and the runs may write Python's bytecode cache (as an installed
command does on its first run), so the figures are those of every later run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.arguments import benchmark_parser

CUSTOMER = "cust-startup-1"
TOUCHPOINTS = (
    ("purchase", "2025-01-06T10:00:00Z", {"amount": "42.00"}),
    ("survey", "2025-01-20T10:00:00Z", {"score": 9}),
    ("purchase", "2025-02-03T10:00:00Z", {"amount": "17.50"}),
)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each command")
    args = parser.parse_args()
    # What a user's shell has: bytecode is cached after the first run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as directory:
        url = make_store(Path(directory), env)
        state = [sys.executable, "-m", "lifecycle", "state", CUSTOMER, "--database-url", url]
        answer = json.loads(subprocess.run(state, env=env, check=True, capture_output=True).stdout)
        assert answer["customer_id"] == CUSTOMER and answer["touchpoints"] == len(TOUCHPOINTS)

        print(
            f"start-up, {args.runs} runs each (Python {sys.version.split()[0]}): wall clock, "
            "and CPU time of the command's process (user + system)"
        )
        baseline = timed_runs([sys.executable, "-c", "pass"], env, args.runs)
        print(row("python -c pass (baseline)", baseline))
        for name, command in (
            ("lifecycle --help", [sys.executable, "-m", "lifecycle", "--help"]),
            (f"lifecycle state {CUSTOMER}", state),
        ):
            runs = timed_runs(command, env, args.runs)
            above = statistics.median(runs.wall) - statistics.median(baseline.wall)
            print(f"{row(name, runs)}   wall median {above:.3f} s above the baseline")


@dataclass
class Runs:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def row(name: str, runs: Runs) -> str:
    return (
        f"  {name:<30} wall median {statistics.median(runs.wall):.3f} s, "
        f"min {min(runs.wall):.3f} s   CPU median {statistics.median(runs.cpu):.3f} s"
    )


def make_store(work: Path, env: dict[str, str]) -> str:
    source = work / "touchpoints.jsonl"
    lines = [
        {
            "event_id": f"startup-{number}",
            "customer_id": CUSTOMER,
            "kind": kind,
            "channel": "web",
            "occurred_at": occurred_at,
            "source": "bench",
            "attributes": attributes,
        }
        for number, (kind, occurred_at, attributes) in enumerate(TOUCHPOINTS)
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    url = f"sqlite:///{work / 'lifecycle.db'}"
    subprocess.run(
        [sys.executable, "-m", "lifecycle", "import", str(source), "--database-url", url],
        env=env,
        check=True,
        capture_output=True,
    )
    return url


def timed_runs(command: list[str], env: dict[str, str], count: int) -> Runs:
    """Wall and CPU seconds of each run, after one untimed run; each run must succeed."""
    runs = Runs()
    for number in range(count + 1):
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"{' '.join(command)} failed (wait status {status})")
        if number:
            runs.wall.append(wall)
            runs.cpu.append(usage.ru_utime + usage.ru_stime)
    return runs


if __name__ == "__main__":
    main()
