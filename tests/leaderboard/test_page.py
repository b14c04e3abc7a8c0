"""The published leaderboard page in a real headless browser (Debian's chromium, driven by Playwright).

The page must load from the file with no console errors and no network request, show every submission, and
reorder its rows when a column header is clicked. Without a browser the test is skipped, unless
``MEMTASKS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.

Run as a script to take the README's screenshot::

    python -m tests.leaderboard.test_page leaderboard/core-v1/index.html leaderboard/core-v1/screenshot.png
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import PUBLISHED_SUITES, ROOT

PUBLISHED = PUBLISHED_SUITES


def _browser_path() -> str | None:
    return os.environ.get("MEMTASKS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def open_page(path: Path, width: int = 1280):
    """A Playwright page showing ``path`` from file, with every console error and network request recorded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_browser_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.errors, page.requests = [], []
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            page.on("pageerror", lambda e: page.errors.append(str(e)))

            def record(route):
                page.requests.append(route.request.url)
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", record)
            page.goto(path.resolve().as_uri())
            page.wait_for_load_state("load")
            yield page
        finally:
            browser.close()


def _needs_browser() -> None:
    missing = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("Playwright (pip install playwright)")
    if _browser_path() is None:
        missing.append("a chromium browser (apt-get install chromium)")
    if missing:
        if os.environ.get("MEMTASKS_REQUIRE_BROWSER"):
            pytest.fail(f"the browser test needs {' and '.join(missing)}")
        pytest.skip(f"needs {' and '.join(missing)}")


def _column(page, table: str, index: int) -> list[str]:
    script = f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    return page.eval_on_selector_all(f"#{table} tbody tr", script)


@pytest.mark.parametrize("suite", PUBLISHED)
def test_the_committed_page_loads_offline_shows_every_submission_and_sorts(suite):
    _needs_browser()
    names = sorted(p.stem for p in (ROOT / "leaderboard" / suite / "submissions").glob("*.json"))
    assert names, "no committed submissions"
    with open_page(ROOT / "leaderboard" / suite / "index.html") as page:
        assert page.errors == []
        assert all(url.startswith("file:") for url in page.requests), page.requests
        rows = page.locator("#overall tbody tr")
        assert rows.count() == len(names)
        assert page.locator("#heat tbody tr").count() == len(names)
        assert page.locator("section.card").count() == 16
        assert page.locator("section.card svg rect.bar").count() == 16 * len(names)
        ranked = _column(page, "overall", 1)
        scores = [float(v) for v in page.eval_on_selector_all(
            "#overall tbody td.score", "cs => cs.map(c => c.firstChild.textContent)")]
        assert scores == sorted(scores, reverse=True), "the page opens ranked by the overall score"
        # Sorting by name reorders the rows alphabetically (the ranking is not alphabetical).
        page.locator("#overall thead th", has_text="Submission").click()
        by_name = _column(page, "overall", 1)
        assert by_name == sorted(ranked, key=str.lower) and by_name != ranked
        # Sorting by the fraction of the ceiling: first click high to low, second low to high.
        header = page.locator("#overall thead th", has_text="Fraction of ceiling")
        header.click()
        fractions = [float(v) for v in _column(page, "overall", 4)]
        assert fractions == sorted(fractions, reverse=True) and _column(page, "overall", 1) != by_name
        assert header.get_attribute("aria-sort") == "descending"
        header.click()
        assert [float(v) for v in _column(page, "overall", 4)] == sorted(fractions)
        # Ranks: cells whose intervals overlap share one, shown as "=N"; every interval holds its figure.
        header = page.locator("#overall thead th").first
        header.click()
        ranks = _column(page, "overall", 0)
        scores = page.eval_on_selector_all("#overall tbody td.score", "cs => cs.map(c => c.firstChild.textContent)")
        intervals = page.eval_on_selector_all("#overall tbody .interval", "cs => cs.map(c => c.textContent)")
        assert len(intervals) == len(scores) and all(
            float(i.split("–")[0]) <= float(s) <= float(i.split("–")[1]) for i, s in zip(intervals, scores))
        shared = [r for r in ranks if r.startswith("=")]
        assert all(ranks.count(r) > 1 for r in shared)
        # A per-setting column of the overview sorts too.
        heads = page.eval_on_selector_all("#heat thead th", "hs => hs.map(h => h.textContent.trim())")
        column = heads.index("Seq2Vec CatCat")
        page.locator("#heat thead th").nth(column).click()
        values = [float(v.rstrip("†")) for v in _column(page, "heat", column)]
        assert values == sorted(values, reverse=True)
        assert page.errors == []


@pytest.mark.parametrize("suite", PUBLISHED)
def test_the_heat_table_shows_every_setting_at_1280_px_without_scrolling_sideways(suite):
    _needs_browser()
    with open_page(ROOT / "leaderboard" / suite / "index.html", width=1280) as page:
        box = page.evaluate("""() => {
            const scroll = document.querySelector("#heat").closest(".scroll");
            const heads = document.querySelectorAll("#heat thead th");
            const last = heads[heads.length - 1].getBoundingClientRect();
            return {columns: heads.length, scrollWidth: scroll.scrollWidth, clientWidth: scroll.clientWidth,
                    lastRight: last.right, lastLeft: last.left, viewport: document.documentElement.clientWidth,
                    pageWidth: document.documentElement.scrollWidth};
        }""")
        assert box["columns"] == 17, box
        assert box["scrollWidth"] <= box["clientWidth"], f"the heat table scrolls sideways: {box}"
        assert 0 <= box["lastLeft"] and box["lastRight"] <= box["viewport"], f"the last setting is cut off: {box}"
        assert box["pageWidth"] <= box["viewport"], f"the page scrolls sideways: {box}"
        overall = page.evaluate("""() => {const s = document.querySelector("#overall").closest(".scroll");
            return [s.scrollWidth, s.clientWidth]}""")
        assert overall[0] <= overall[1], f"the overall table scrolls sideways: {overall}"
        # Each setting's header reads as the task over its targets, and the last one still sorts.
        last = page.locator("#heat thead th").last
        assert last.text_content().strip() == "Vec2Seq RealReal"
        last.click()
        values = [float(v.rstrip("†")) for v in _column(page, "heat", 16)]
        assert values == sorted(values, reverse=True) and last.get_attribute("aria-sort") == "descending"
        assert page.errors == []


def screenshot(path: Path, out: Path) -> None:
    """Save a full-page screenshot of the page at ``path`` to ``out``."""
    with open_page(path) as page:
        page.screenshot(path=str(out), full_page=False)


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
