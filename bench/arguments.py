"""The command line every benchmark shares: its module docstring as the help, the size of
its workload, and the load of those that send requests at a rate."""

from __future__ import annotations

import argparse


def benchmark_parser(
    doc: str | None, *, touchpoints: int | None = None, customers: int | None = None
) -> argparse.ArgumentParser:
    """A parser showing ``doc`` as written, with ``--touchpoints`` and ``--customers``
    where the benchmark's workload has those sizes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    if touchpoints is not None:
        parser.add_argument("--touchpoints", type=int, default=touchpoints)
    if customers is not None:
        parser.add_argument("--customers", type=int, default=customers)
    return parser


def add_load(parser: argparse.ArgumentParser, rate: int, seconds: float) -> None:
    """``--rate`` (requests per second, open loop) and ``--seconds`` (how long)."""
    parser.add_argument("--rate", type=int, default=rate)
    parser.add_argument("--seconds", type=float, default=seconds)
