"""The HTML report in a real headless browser (Debian's chromium, driven by playwright; nothing downloads
a browser): it loads from disk with no network, shows the verdict, draws the charts, and its example
browser filters to disagreements. A screenshot is kept for a human to look at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import cli

from .test_pipeline import SMALL, TRAIN
from .verdicts import run_exit_code

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def report(azure: object, tiny_model: Path) -> Path:
    args = ["run", "--model-path", str(tiny_model), "--tracks", "toolcall", *SMALL, *TRAIN]
    result = cli(args)
    assert result.exit_code == run_exit_code(), result.output
    return Path("05_eval/report.html").resolve()


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM, "chromium is not installed: run `make setup` (it installs Debian's chromium)"
    from playwright.sync_api import sync_playwright

    verdict = json.loads(Path("05_eval/verdict.json").read_text())["tracks"]["toolcall"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        assert page.locator("#verdicts").inner_text().count(verdict["says"]) == 1
        assert page.locator(".standin").count() == 0  # Azure played the hosted model here
        chart = page.locator("#track-toolcall svg.chart").first
        assert chart.is_visible() and chart.bounding_box()["height"] > 100  # type: ignore[index]
        assert page.locator("#track-toolcall svg.chart rect").count() >= 4  # bars drawn
        rows = page.locator("#examples-toolcall tbody tr")
        assert rows.count() == 4
        disagreeing = page.locator("#examples-toolcall tbody tr[data-disagree='1']").count()
        assert 0 < disagreeing <= 4  # the gold-answering hosted fake is right where the tiny SLM is not
        assert "correct" in rows.first.inner_text()
        page.locator("input.disagree").check()
        assert page.locator("#examples-toolcall tbody tr:visible").count() == disagreeing
        page.locator("input.disagree").uncheck()
        assert page.locator("#examples-toolcall tbody tr:visible").count() == 4
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert all(url.startswith("file://") for url in requests), requests  # self-contained
    print(f"\nscreenshot: {shot}")
