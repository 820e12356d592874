"""The lifecycle report for people: one self-contained HTML page (inline SVG, no script,
nothing fetched at view time) with the funnel, a stage-flow diagram of every transition
including dissolution and reactivation, monthly cohort retention and, once
``lifecycle analytics validate`` has run, the BG/NBD tracking chart.

Cohort retention: a cohort is the customers whose first touchpoint fell in a month;
month k shows the share of them with at least one touchpoint k months later.

Tracking (the papers' classic chart): cumulative repeat purchase days of the
validation's customers, week by week across the calibration period and the holdout,
against what the model fitted on the calibration period expects from each customer's
first purchase on.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lifecycle.domain.vocabulary import Stage
from projections.funnel import STARTED, Funnel, FunnelFigures, FunnelView
from projections.summary import CohortRow, Summary, SummaryView
from projections.wiring import Wiring, close_view

FUNNEL_COLOUR = "#2b6cb0"
FUNNEL_NOW_COLOUR = "#90cdf4"
FORWARD_COLOUR = "#2f855a"
DISSOLUTION_COLOUR = "#c53030"
REACTIVATION_COLOUR = "#d69e2e"
OTHER_COLOUR = "#718096"
NODE_COLOUR = "#1a365d"
ACTUAL_COLOUR = "#1a365d"
PREDICTED_COLOUR = "#dd6b20"
MAX_OFFSETS = 24
MAX_COHORTS = 36

_FORWARD = [s.value for s in Stage if s is not Stage.DISSOLUTION]


@dataclass(frozen=True)
class ReportData:
    funnel: FunnelFigures
    cohorts: list[CohortRow]
    position: int
    generated_at: datetime
    validation: dict[str, Any] | None = None
    """The latest validation of the analytics models (``Validation.as_json``), if any."""


def gather(wiring: Wiring, generated_at: datetime) -> ReportData:
    """Read what the report shows from the funnel and summary views, and the latest
    validation from the predictions view."""
    funnel_view: FunnelView = wiring.open_view(Funnel)  # type: ignore[assignment]
    summary_view: SummaryView = wiring.open_view(Summary)  # type: ignore[assignment]
    predictions_view = wiring.predictions_view()
    try:
        figures, funnel_position = funnel_view.figures()
        cohorts, summary_position = summary_view.cohorts()
        validation = predictions_view.latest_validation()
    finally:
        close_view(funnel_view)
        close_view(summary_view)
        close_view(predictions_view)
    return ReportData(
        figures,
        cohorts,
        min(funnel_position or 0, summary_position or 0),
        generated_at,
        validation,
    )


def write_report(wiring: Wiring, out: Path, generated_at: datetime) -> ReportData:
    data = gather(wiring, generated_at)
    out.write_text(render(data), encoding="utf-8")
    return data


def render(data: ReportData) -> str:
    title = "Relationship lifecycle report"
    body = "\n".join(
        (
            f"<h1>{title}</h1>",
            f'<p class="meta">{data.funnel.relationships} relationships · event log position '
            f"{data.position} · generated {html.escape(data.generated_at.isoformat())}</p>",
            "<h2>Funnel</h2>",
            "<p>Bars: times a relationship entered each stage (all cycles); the light part, "
            "how many are there now. Conversion: entered the next stage / entered this one.</p>",
            funnel_svg(data.funnel),
            "<h2>Stage flow</h2>",
            "<p>Every recorded transition; line width grows with the count. Red: "
            "dissolution; amber, dashed: reactivation (a new cycle).</p>",
            flow_svg(data.funnel),
            "<h2>Monthly cohort retention</h2>",
            "<p>Share of each month's new customers with a touchpoint k months later.</p>",
            cohort_svg(data.cohorts),
            *(_tracking_section(data.validation) if data.validation else ()),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1a202c; background: #fff; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; }}
.meta {{ color: #4a5568; }} svg {{ display: block; }} svg text {{ font-size: 12px; }}
</style></head>
<body>
{body}
</body></html>
"""


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{html.escape(text)}</text>'
    )


def funnel_svg(figures: FunnelFigures) -> str:
    width, left, bar_width, row = 980, 110, 440, 44
    stages = {s.stage: s for s in figures.stages}
    most = max((s.entered for s in figures.stages), default=0) or 1
    conversions = {c.from_stage: c for c in figures.conversions}
    parts = []
    for i, name in enumerate([*_FORWARD, Stage.DISSOLUTION.value]):
        stage = stages[name]
        y = 10 + i * row
        entered_w = bar_width * stage.entered / most
        now_w = bar_width * stage.current / most
        parts.append(_text(0, y + 17, name))
        parts.append(
            f'<rect class="funnel-bar" x="{left}" y="{y}" width="{entered_w:.1f}" height="24" '
            f'fill="{FUNNEL_COLOUR}"/>'
        )
        parts.append(
            f'<rect class="funnel-now" x="{left}" y="{y + 6}" width="{now_w:.1f}" height="12" '
            f'fill="{FUNNEL_NOW_COLOUR}"/>'
        )
        median = "-" if stage.median_days is None else f"{stage.median_days:g}"
        label = f"entered {stage.entered} · now {stage.current} · median {median} days in stage"
        parts.append(_text(left + bar_width + 8, y + 17, label))
        conversion = conversions.get(name)
        if conversion is not None and conversion.rate is not None:
            parts.append(
                _text(
                    left + 4,
                    y + row - 4,
                    f"↓ {conversion.rate:.1%} to {conversion.to_stage}",
                    extra='fill="#4a5568"',
                )
            )
    height = 20 + 5 * row
    return (
        f'<svg id="funnel" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="funnel">{"".join(parts)}</svg>'
    )


Point = tuple[float, float]


def _curve(start: Point, control1: Point, control2: Point, end: Point) -> str:
    """An SVG cubic Bézier path."""
    (a, b), (c, d), (e, f), (g, h) = start, control1, control2, end
    return f"M{a:.1f},{b:.1f} C{c:.1f},{d:.1f} {e:.1f},{f:.1f} {g:.1f},{h:.1f}"


def flow_svg(figures: FunnelFigures) -> str:
    width, height = 900, 380
    node_w, node_h = 120, 40
    top, bottom = 70, 300
    xs = {name: 40 + i * 215 for i, name in enumerate(_FORWARD)}
    centre = {name: (x + node_w / 2, top + node_h / 2) for name, x in xs.items()}
    dissolution = (width / 2, bottom + node_h / 2)
    centre[Stage.DISSOLUTION.value] = dissolution
    counts: Counter[tuple[str, str]] = Counter()
    for t in figures.transitions:
        if t.from_stage != STARTED:
            counts[(t.from_stage, t.to_stage)] += t.count
    most = max(counts.values(), default=0) or 1
    edges = []
    for (source, target), count in sorted(counts.items()):
        if source not in centre or target not in centre:
            continue
        stroke = 2 + 14 * count / most
        (x1, y1), (x2, y2) = centre[source], centre[target]
        if target == Stage.DISSOLUTION.value:
            colour, dash, kind = DISSOLUTION_COLOUR, "", "dissolution"
            path = _curve(
                (x1, y1 + node_h / 2), (x1, y2 - 60), (x2, y2 - 80), (x2, y2 - node_h / 2)
            )
            label_at = ((x1 + x2) / 2, (y1 + y2) / 2 + 10)
        elif source == Stage.DISSOLUTION.value:
            colour, dash, kind = REACTIVATION_COLOUR, ' stroke-dasharray="8 5"', "reactivation"
            path = _curve(
                (x1 - node_w / 2, y1), (x2 - 80, y1), (x2 - 40, y2 + 60), (x2, y2 + node_h / 2)
            )
            label_at = ((x1 + x2) / 2 - 60, y1 - 10)
        elif _FORWARD.index(target) == _FORWARD.index(source) + 1:
            colour, dash, kind = FORWARD_COLOUR, "", "forward"
            path = f"M{x1 + node_w / 2:.1f},{y1:.1f} L{x2 - node_w / 2:.1f},{y2:.1f}"
            label_at = ((x1 + x2) / 2, y1 - 12)
        else:
            colour, dash, kind = OTHER_COLOUR, ' stroke-dasharray="3 3"', "other"
            lift = 45 + 10 * abs(_FORWARD.index(target) - _FORWARD.index(source))
            path = _curve(
                (x1, y1 - node_h / 2), (x1, y1 - lift), (x2, y2 - lift), (x2, y2 - node_h / 2)
            )
            label_at = ((x1 + x2) / 2, y1 - lift + 6)
        edges.append(
            f'<path class="flow-edge {kind}" d="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke:.1f}" stroke-opacity="0.75"{dash}>'
            f"<title>{html.escape(f'{source} → {target}: {count}')}</title></path>"
        )
        edges.append(_text(label_at[0], label_at[1], str(count), "middle", 'fill="#1a202c"'))
    nodes = []
    for name, (cx, cy) in centre.items():
        nodes.append(
            f'<rect class="flow-node" x="{cx - node_w / 2:.1f}" y="{cy - node_h / 2:.1f}" '
            f'width="{node_w}" height="{node_h}" rx="6" fill="{NODE_COLOUR}"/>'
        )
        nodes.append(_text(cx, cy + 4, name, "middle", 'fill="#ffffff"'))
    return (
        f'<svg id="flow" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="stage flow">{"".join(edges)}{"".join(nodes)}</svg>'
    )


def retention_colour(share: float) -> str:
    """White to deep blue as the share goes from 0 to 1."""
    share = min(max(share, 0.0), 1.0)
    low, high = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def cohort_svg(cohorts: list[CohortRow]) -> str:
    shown = cohorts[-MAX_COHORTS:]
    offsets = min(max((len(c.active_by_offset) for c in shown), default=1), MAX_OFFSETS)
    cell, left, head = 30, 130, 30
    width = left + offsets * cell + 10
    height = head + len(shown) * cell + 10
    parts = [_text(0, 18, "cohort (size)")]
    for k in range(offsets):
        parts.append(_text(left + k * cell + cell / 2, 18, str(k), "middle"))
    for i, cohort in enumerate(shown):
        y = head + i * cell
        parts.append(_text(0, y + 19, f"{cohort.cohort} ({cohort.customers})"))
        for k, active in enumerate(cohort.active_by_offset[:offsets]):
            share = active / cohort.customers if cohort.customers else 0.0
            parts.append(
                f'<rect class="cohort-cell" x="{left + k * cell}" y="{y}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{retention_colour(share)}">'
                f"<title>{html.escape(f'{cohort.cohort} +{k}: {share:.0%}')}</title></rect>"
            )
            colour = "#ffffff" if share > 0.5 else "#1a202c"
            parts.append(
                _text(
                    left + k * cell + cell / 2 - 1,
                    y + 18,
                    f"{share * 100:.0f}",
                    "middle",
                    f'fill="{colour}" font-size="10"',
                )
            )
    if not shown:
        parts.append(_text(0, head + 18, "no customers yet"))
    return (
        f'<svg id="cohorts" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{max(height, 60)}" role="img" aria-label="cohort retention">'
        f"{''.join(parts)}</svg>"
    )


def _tracking_section(validation: dict[str, Any]) -> tuple[str, ...]:
    return (
        "<h2>Tracking repeat purchases (BG/NBD)</h2>",
        f"<p>Cumulative repeat purchase days of the {validation['customers']:,} customers who "
        f"bought by {html.escape(validation['calibration_end'])}, week by week: recorded, and "
        "expected by the model fitted on purchases up to the dashed line. Holdout to "
        f"{html.escape(validation['holdout_end'])}: predicted "
        f"{validation['predicted_total']:,.1f}, actual {validation['actual_total']:,}; mean "
        f"absolute error per customer {validation['mean_absolute_error']:.3f}.</p>",
        tracking_svg(validation),
    )


def tracking_svg(validation: dict[str, Any]) -> str:
    """Two cumulative curves, recorded and expected, with the calibration's end marked."""
    weeks = validation["tracking"]
    width, height, left, bottom, top, right = 900, 340, 70, 40, 20, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    most = max((max(w["actual"], w["predicted"]) for w in weeks), default=0) or 1
    last = max(len(weeks) - 1, 1)

    def point(index: int, value: float) -> str:
        return f"{left + plot_w * index / last:.1f},{top + plot_h * (1 - value / most):.1f}"

    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#4a5568"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#4a5568"/>',
        _text(left - 6, top + 4, f"{most:,.0f}", "end"),
        _text(left - 6, top + plot_h, "0", "end"),
        _text(left, height - 12, weeks[0]["week_end"] if weeks else ""),
        _text(left + plot_w, height - 12, weeks[-1]["week_end"] if weeks else "", "end"),
    ]
    calibration_end = date.fromisoformat(validation["calibration_end"])
    split = next(
        (i for i, w in enumerate(weeks) if date.fromisoformat(w["week_end"]) >= calibration_end),
        None,
    )
    if split is not None:
        x = left + plot_w * split / last
        parts.append(
            f'<line class="calibration-end" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
            f'y2="{top + plot_h}" stroke="#718096" stroke-dasharray="6 4"/>'
        )
        parts.append(_text(x + 4, top + 12, "calibration end", extra='fill="#4a5568"'))
    for name, colour, dash in (
        ("actual", ACTUAL_COLOUR, ""),
        ("predicted", PREDICTED_COLOUR, ' stroke-dasharray="8 4"'),
    ):
        points = " ".join(point(i, w[name]) for i, w in enumerate(weeks))
        parts.append(
            f'<polyline class="tracking-{name}" points="{points}" fill="none" '
            f'stroke="{colour}" stroke-width="3"{dash}/>'
        )
    parts.append(_text(left + 10, top + plot_h - 30, "recorded", extra=f'fill="{ACTUAL_COLOUR}"'))
    parts.append(
        _text(left + 10, top + plot_h - 14, "expected (model)", extra=f'fill="{PREDICTED_COLOUR}"')
    )
    return (
        f'<svg id="tracking" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="tracking of cumulative repeat purchases">'
        f"{''.join(parts)}</svg>"
    )
