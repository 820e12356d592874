"""The HTML report as a person sees it: rendered by headless Chromium, its charts drawn."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings
from projections.report import (
    DISSOLUTION_COLOUR,
    FORWARD_COLOUR,
    FUNNEL_COLOUR,
    NODE_COLOUR,
    REACTIVATION_COLOUR,
    retention_colour,
)
from tests.conftest import run_cli
from tests.integration.projections.conftest import History

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
)


def _record(url: str) -> None:
    app = Components(Settings(database_url=url)).application()
    history = History(app)
    for n in range(4):
        history(f"c{n}", "purchase", 0, amount="10")
        history(f"c{n}", "purchase", 40 * n + 5, amount="10")
    history("c1", "cancellation", 60)
    history("c1", "trial", 90)  # reactivation
    history("c2", "renewal", 200)
    app.close()


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _over_white(colour: str, opacity: float) -> tuple[int, int, int]:
    r, g, b = _rgb(colour)
    return (
        round(r * opacity + 255 * (1 - opacity)),
        round(g * opacity + 255 * (1 - opacity)),
        round(b * opacity + 255 * (1 - opacity)),
    )


def _pixels_near(pixels: Iterable[tuple[int, ...]], rgb: tuple[int, int, int]) -> int:
    return sum(1 for p in pixels if all(abs(p[i] - rgb[i]) <= 3 for i in range(3)))


def test_the_report_draws_funnel_flow_and_cohorts_in_a_browser(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    _record(url)
    page = tmp_path / "report.html"

    written = run_cli("report", "--out", str(page), "--database-url", url)
    dom = _chromium(page, tmp_path, "--dump-dom").stdout.decode()
    _chromium(page, tmp_path, "--window-size=1000,1600", f"--screenshot={tmp_path / 'shot.png'}")
    raw = Image.open(tmp_path / "shot.png").convert("RGB").tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]

    assert written.returncode == 0, written.stderr
    assert "http" not in page.read_text().replace("http://www.w3.org/2000/svg", "")
    assert dom.count('class="funnel-bar"') == 5
    assert dom.count('class="flow-edge reactivation"') == 1
    assert dom.count('class="flow-node"') == 5
    drawn = {
        "funnel": _pixels_near(pixels, _rgb(FUNNEL_COLOUR)),
        "nodes": _pixels_near(pixels, _rgb(NODE_COLOUR)),
        "forward": _pixels_near(pixels, _over_white(FORWARD_COLOUR, 0.75)),
        "dissolution": _pixels_near(pixels, _over_white(DISSOLUTION_COLOUR, 0.75)),
        "reactivation": _pixels_near(pixels, _over_white(REACTIVATION_COLOUR, 0.75)),
        "cohorts": _pixels_near(pixels, _rgb(retention_colour(1.0))),
    }
    assert all(count > 50 for count in drawn.values()), drawn
