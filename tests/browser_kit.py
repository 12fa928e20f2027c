"""What the browser tests and scripts/screenshot_lessons.py share: starting the app, Chromium and its flags,
projector mode, and the check for chart text drawn past its box."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Legend entries and axis labels that reach past their chart's own box (a clipped chart): their texts.
CLIPPED = """plot => {
    const box = plot.getBoundingClientRect();
    return [...plot.querySelectorAll('.legendtext, .xtick text, .ytick text, .g-xtitle text, .gtitle')]
        .filter(t => { const r = t.getBoundingClientRect();
                       return r.right > box.right + 1 || r.left < box.left - 1 || r.bottom > box.bottom + 1; })
        .map(t => t.textContent);
}"""


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright with the project's flags; fails (never skips) when it is missing."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(log, env: dict | None = None, timeout: float = 60, port: int | None = None
              ) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a localhost port (a free one unless given), its output to `log`; returns
    it and its URL once healthy."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"streamlit did not start within {timeout:g} s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def app_server(log_path: Path, port: int | None = None) -> Iterator[str]:
    """The app with this process's environment (the suite's own cache dir, so its room database, and offline
    Keras home), its output in `log_path`: yields its URL, stops it afterwards; RuntimeError if it never starts."""
    with open(log_path, "w") as log:
        proc, url = start_app(log, dict(os.environ), port=port)
        try:
            yield url
        finally:
            stop_app(proc)


def projector_on(page) -> bool:
    """Turn on projector mode with the sidebar switch; True once it is on."""
    switch = page.get_by_role("switch")
    for _ in range(3):  # a click that lands while the first script run finishes can be dropped
        page.locator("[data-testid=stSidebar] label").filter(has_text="Projector mode").click()
        page.wait_for_timeout(1000)
        if switch.is_checked():
            return True
    return switch.is_checked()
