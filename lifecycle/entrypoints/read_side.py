"""What the demo shows of the read side once it has recorded its population: the
read models caught up, the funnel printed as a person reads it, the analytics models
fitted with the customers most likely lapsed, and (unless told not to) the read API
served with a reader key it prints."""

from __future__ import annotations

import secrets
import sys
from typing import Any, TextIO

from lifecycle.domain.clock import utc_now
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.service import catch_up, funnel_figures


def print_funnel(components: Components, out: TextIO | None = None) -> None:
    """Stage counts, conversion between consecutive stages, median days in stage."""
    out = out or sys.stdout
    figures, position = funnel_figures(components)
    print(
        f"\nfunnel of {figures.relationships} relationships (log position {position or 0}):",
        file=out,
    )
    print(f"  {'stage':<12} {'now':>7} {'entered':>8} {'median days':>12}", file=out)
    for stage in figures.stages:
        median = "-" if stage.median_days is None else f"{stage.median_days:g}"
        print(f"  {stage.stage:<12} {stage.current:>7} {stage.entered:>8} {median:>12}", file=out)
    print("  conversion:", file=out)
    for conversion in figures.conversions:
        rate = "-" if conversion.rate is None else f"{conversion.rate:.1%}"
        print(
            f"    {conversion.from_stage:>11} -> {conversion.to_stage:<12} {rate:>6} "
            f"({conversion.converted} of {conversion.entered})",
            file=out,
        )
    if figures.dissolutions:
        print("  dissolved because:", file=out)
        for dissolution in figures.dissolutions[:8]:
            why = dissolution.rule + (f": {dissolution.reason}" if dissolution.reason else "")
            print(f"    {why:<40} {dissolution.count:>7}", file=out)


def reader_key_for(settings: Settings) -> tuple[Settings, str]:
    """A reader key: the first configured one, or a new one added to the settings."""
    for key, role in settings.api_keys.items():
        if role == "reader":
            return settings, key
    key = secrets.token_urlsafe(24)
    return settings.model_copy(update={"api_keys": {**settings.api_keys, key: "reader"}}), key


def read_side_for_demo(
    settings: Settings, *, serve: bool, out: TextIO | None = None, **serve_options: Any
) -> None:
    """After the demo recorded its population: project it, print the funnel and, when
    ``serve``, keep projecting and serve the read API until interrupted."""
    out = out or sys.stdout
    components = Components(settings)
    statuses = catch_up(components)
    print(
        f"\nprojected {len(statuses)} read models up to position "
        f"{max((s.position for s in statuses), default=0)}",
        file=out,
    )
    print_funnel(components, out)
    from lifecycle.entrypoints.analytics import print_fit_and_lapsed

    print_fit_and_lapsed(components, utc_now().date(), out)
    if not serve:
        return
    from lifecycle.entrypoints.serve import serve_api

    settings, key = reader_key_for(settings)
    print(
        f"\nread API on http://{settings.api_host}:{settings.api_port}/v1/funnel "
        f"(docs at /docs); reader key:\n  {key}\n"
        f"  curl -H 'Authorization: Bearer {key}' "
        f"http://{settings.api_host}:{settings.api_port}/v1/funnel\n"
        "Ctrl-C stops it.",
        file=out,
        flush=True,
    )
    serve_api(settings, with_projections=True, **serve_options)
