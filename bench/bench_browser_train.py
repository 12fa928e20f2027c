"""Benchmark: browser click on Train to charts drawn, for 4 heads × 20 epochs on the sample data.

Starts `streamlit run app.py` on localhost, opens the Experiment page in headless Chromium with a
4-head experiment in the link, clicks Train once to warm up (features, traced graphs), then clicks
again N times and reports the time from click until the loss chart shows 2 curves per head.
Baseline in the same run: the engine's own `train()` time for the same experiment, so the ratio
says how much the page adds on top of the computation.

    python bench/bench_browser_train.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the app warms every lesson in the background at start (lib/serve/warmup.py): off, so this measures only its own clicks
os.environ.setdefault("HEADLAB_WARM_LESSONS", "0")

HEADS = ["activation=sigmoid", "activation=softmax,units=1",
         "activation=softmax,units=2,loss=sparse_categorical_crossentropy", "activation=linear,from_logits=true"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from load import _free_port, wait_healthy
    from playwright.sync_api import sync_playwright

    from lib.experiment import Experiment
    from lib.heads.config import parse_head_string

    exp = Experiment(task="binary", dataset="fashion", epochs=20,
                     heads=tuple(parse_head_string("binary", h) for h in HEADS))
    query = urllib.parse.urlencode(exp.to_query(), doseq=True)
    env = {**os.environ, "HEADLAB_CACHE": tempfile.mkdtemp(prefix="headlab-bench-")}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        times = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu",
                                               "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{url}/experiment?{query}")
            button = page.get_by_role("button", name="Train")
            for i in range(args.repeats + 1):
                button.wait_for(timeout=120_000)
                page.wait_for_timeout(500)
                t0 = time.perf_counter()
                button.click()
                # done when a fresh "Trained ..." line and the loss chart with 8 curves are on the page
                page.get_by_text("Trained 4 heads").wait_for(timeout=300_000)
                page.wait_for_function(
                    "document.querySelector('.js-plotly-plot') && "
                    "document.querySelector('.js-plotly-plot').querySelectorAll('g.trace.scatter').length == 8",
                    timeout=300_000)
                elapsed = time.perf_counter() - t0
                print(f"{'warm-up' if i == 0 else f'run {i}'}: click → 8 loss curves drawn in {elapsed:.2f} s")
                if i:
                    times.append(elapsed)
                page.reload()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)

    from lib.data.loader import load_dataset
    from lib.train.trainer import train

    data = load_dataset(exp.dataset, exp.task)
    train(exp.heads, data, epochs=exp.epochs)  # same warm-up as the page had
    t0 = time.perf_counter()
    train(exp.heads, data, epochs=exp.epochs)
    engine = time.perf_counter() - t0
    median = statistics.median(times)
    print(f"median click → charts: {median:.2f} s; engine alone: {engine:.2f} s; page overhead ratio {median / engine:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
