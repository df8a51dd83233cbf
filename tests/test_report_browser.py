"""Open the smoke run's report.html in headless Chromium (offline): every image loads,
every section shows.

Needs Debian's chromium (``apt-get install -y chromium``) and the Python package
``playwright`` (``pip install playwright``). The test never runs ``playwright install``: it
drives the system browser through ``executable_path``. Skipped, with the reason, where
either is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from synthlens.report import SECTIONS

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1366, "height": 768}


def chromium_path() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def check_report_in_browser(page_path: Path, screenshot_dir: Path) -> dict[str, Any]:
    """Open ``page_path`` offline at laptop size; assert it renders; save two screenshots.

    Reusable for any run folder's report (for example a ``smoke`` run of the pipeline).
    """
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install playwright; do NOT run "
                    "`playwright install`, the test uses Debian's chromium)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium not found (as root: apt-get update && apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP, offline=True)
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
            sections = page.evaluate(
                "Array.from(document.querySelectorAll('section')).map(s => "
                "[s.id, s.getBoundingClientRect().height, s.querySelector('h2').innerText])")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            first = screenshot_dir / "report_first_screen.png"
            page.screenshot(path=str(first))
            page.add_style_tag(content="nav { position: static; }")  # keep it off the shot
            plane = screenshot_dir / "report_plane.png"
            page.locator("#plane").screenshot(path=str(plane))
        finally:
            browser.close()
    assert not errors, errors
    # Self-contained: the page itself is the only request (images are data URIs).
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert images, "no images on the page"
    broken = [alt for complete, width, alt in images if not complete or width == 0]
    assert broken == [], f"images that did not load: {broken}"
    assert [s[0] for s in sections] == [sid for sid, _ in SECTIONS]
    assert all(height > 40 for _, height, _ in sections)
    assert overflow <= 1, f"page is {overflow}px wider than a laptop screen"
    assert first.stat().st_size > 10_000 and plane.stat().st_size > 10_000
    return {"images": len(images), "first": first, "plane": plane}


def test_report_renders_in_headless_chromium(smoke_run: Path, tmp_path: Path) -> None:
    page_path = smoke_run / "report.html"
    out = check_report_in_browser(page_path, tmp_path)
    assert out["images"] == page_path.read_text(encoding="utf-8").count("<img ")
