"""Soak: many sessions one after another, each training a different head structure; does memory level off?

Head Lab turns off two things Streamlit does after every script run — clearing Keras's session and a
full garbage collection (see ui/components.keep_keras_state and .streamlit/config.toml) — and keeps
traced heads (at most 64) and feature tensors (within a byte budget) between sessions. This starts
the app, runs --sessions sessions in turn over the websocket protocol (bench/st_client.py), each
with 3 heads whose structure cycles through 20 variants, and prints the server's RSS every 20
sessions against the first reading.

    python bench/soak.py [--sessions 160] [--epochs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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

ACTIVATIONS = ("sigmoid", "softmax", "linear", "tanh", "relu")


def _rss_mb(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) // 1024


async def _session(url: str, i: int, epochs: int) -> bool:
    from st_client import StreamlitSession
    from streamlit.proto.Alert_pb2 import Alert

    from lib.experiment import Experiment
    from lib.heads.config import parse_head_string

    heads = tuple(parse_head_string("binary", f"activation={ACTIVATIONS[(i + k) % 5]},units={1 + (i + k) % 3},"
                                              f"hidden={8 * (1 + i % 4)}:relu") for k in range(3))
    exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=epochs, seed=i, heads=heads)
    client = StreamlitSession(url, "experiment", urllib.parse.urlencode(exp.to_query(), doseq=True))
    await client.open(timeout=60)
    try:
        if not await client.wait_until(lambda st: st.finished and st.button("Train"), time.monotonic() + 120):
            return False
        runs = len(client.state.finished)
        await client.click("Train")
        return await client.wait_until(
            lambda st: len(st.finished) > runs and any("Trained 3" in a for a in st.alerts(Alert.SUCCESS)),
            time.monotonic() + 120) and not client.state.errors()
    finally:
        await client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=160)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()

    from load import _free_port, wait_healthy

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HEADLAB_CACHE": tempfile.mkdtemp(prefix="headlab-soak-")}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failed = 0
    try:
        wait_healthy(url, server)

        async def run() -> int:
            bad, first, t0 = 0, None, time.monotonic()
            for i in range(args.sessions):
                bad += not await _session(url, i, args.epochs)
                if i % 20 == 19:
                    rss = _rss_mb(server.pid)
                    first = first or rss
                    print(f"{i + 1:>4} sessions: RSS {rss} MB ({rss - first:+d} MB since 20), "
                          f"{time.monotonic() - t0:.0f} s, failed {bad}", flush=True)
            return bad

        failed = asyncio.run(run())
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
