"""Screenshot every lesson after its run, at 1280×800 and in projector mode, for a person to look at.

    .venv/bin/python scripts/screenshot_lessons.py [--out screenshots/lessons] [--lesson ID ...]

Starts the app on a free port and drives Debian's Chromium (as tests/test_browser.py does). For each
lesson it saves the top of the page (the 1280×800 a laptop shows) and the whole page, first in normal
mode and then in projector mode, and prints any chart whose legend or axis labels reach past its box.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# the app warms every lesson in the background at start (lib/serve/warmup.py): off, so each click's time is its own
os.environ.setdefault("HEADLAB_WARM_LESSONS", "0")
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser_kit import ARGS, CHROMIUM, CLIPPED, projector_on, start_app, stop_app  # noqa: E402 (path set above)

from lib.lessons import LESSONS  # noqa: E402


def _shoot(page, url: str, lesson_id: str, out: Path, mode: str) -> float:
    page.goto(f"{url}/lessons?lesson={lesson_id}")
    page.get_by_role("button", name="Run it").wait_for(timeout=120_000)
    page.wait_for_timeout(800)
    if mode == "projector":
        projector_on(page)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run it").click()
    page.get_by_text("What we measured:").wait_for(timeout=600_000)
    seconds = time.perf_counter() - t0
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(out / f"{lesson_id}-{mode}-top.png"))
    # Streamlit scrolls inside its own container, so a full-page shot needs a viewport that tall.
    tall = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": min(int(tall) + 100, 12_000)})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / f"{lesson_id}-{mode}-full.png"))
    page.set_viewport_size({"width": 1280, "height": 800})
    plots = page.locator(".js-plotly-plot")
    for i in range(plots.count()):
        cut = plots.nth(i).evaluate(CLIPPED)
        if cut:
            print(f"  {lesson_id} {mode}: chart {i + 1} clips {cut[:5]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="screenshots/lessons")
    ap.add_argument("--lesson", action="append", help="only these lessons (ids); default: all")
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    ids = args.lesson or [lesson.id for lesson in LESSONS]
    proc, url = start_app(subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for lesson_id in ids:
                for mode in ("normal", "projector"):
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    seconds = _shoot(page, url, lesson_id, out, mode)
                    print(f"{lesson_id} {mode}: click to results {seconds:.1f} s")
                    page.close()
            browser.close()
    finally:
        stop_app(proc)
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
