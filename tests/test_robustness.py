"""Robustness: a server killed mid-write, absurd CLI and URL settings, concurrent sweeps, the training gate."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_data

from lib.backbones.features import cache_path, find_cut, get_features
from lib.backbones.registry import REGISTRY
from lib.common.errors import ConfigError
from lib.common.paths import STALE_TMP_SECONDS
from lib.experiment import Experiment, from_query
from lib.heads.config import HeadConfig, default_head
from lib.serve.gate import TrainingGate
from lib.train.trainer import train

ROOT = Path(__file__).resolve().parent.parent

# ---- a server killed while it writes a feature-cache entry ------------------------------------------

# The child computes features for a dataset nobody else uses; its os.replace (the step that publishes a
# finished temp file) first drops a marker and sleeps, so the test can SIGKILL it exactly mid-write.
CHILD = r"""
import os, sys, time
from pathlib import Path
from conftest import toy_data, TEST_BACKBONE
os.environ["HEADLAB_CACHE"] = sys.argv[1]  # importing conftest forced its own; use the test's
marker = Path(sys.argv[2])
import lib.common.paths
real_replace = os.replace
def slow_replace(src, dst):
    if "features" in str(dst):
        marker.write_text(str(src))
        time.sleep(120)
    return real_replace(src, dst)
lib.common.paths.os.replace = slow_replace
from lib.backbones.registry import load_backbone
from lib.backbones.features import find_cut, get_features
bb = load_backbone(TEST_BACKBONE["backbone"], TEST_BACKBONE["input_size"], TEST_BACKBONE["weights"])
get_features(bb, find_cut(bb.model, 0), toy_data("binary", n=24, seed=4242))
print("finished without being killed")
"""


def test_killed_mid_cache_write_leaves_no_entry_and_the_next_write_cleans_up(tmp_path, tiny_backbone):
    marker = tmp_path / "inside-write"
    cache = os.environ["HEADLAB_CACHE"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, cache, str(marker)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, child.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the cache write"
            time.sleep(0.1)
        time.sleep(0.2)  # it is now asleep inside os.replace: data written and fsynced, not yet renamed
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    data = toy_data("binary", n=24, seed=4242)
    cut = find_cut(tiny_backbone.model, 0)
    entry = cache_path(tiny_backbone, cut, data)
    leftover = Path(marker.read_text())
    assert not entry.exists(), "a killed writer must not leave a final cache entry"
    assert leftover.exists() and leftover.parent == entry.parent
    assert leftover.name.startswith(f".{entry.name}.") and leftover.name.endswith(".tmp")

    # The leftover looks old (as after a restart some minutes later); a fresh temp file of a live writer
    # in the same folder must survive the cleanup.
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(leftover, (old, old))
    live = entry.parent / f".{entry.name}.live-writer.tmp"
    live.write_bytes(b"half")
    try:
        first = get_features(tiny_backbone, cut, data)
        assert not first.cached and first.cache_note == ""
        assert entry.is_file() and not leftover.exists() and live.exists()
        second = get_features(tiny_backbone, cut, data)
        assert second.cached
        np.testing.assert_array_equal(first.features, second.features)
        assert first.features.shape[0] == 24 and np.isfinite(first.features).all()
    finally:
        live.unlink(missing_ok=True)


# ---- bad settings on the command line ------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(("error", "usage"))]


BIG = 100_000
# Complements tests/test_cli.py (units=0, learning_rate=1e9, --seed abc, --epochs 10**6, activation=swish).
BAD_CALLS = [
    (["--head", "units=1000000"], "units must be a whole number from 1 to 4096"),
    (["--head", "learning_rate=-1"], "learning_rate must be a number in (0, 10]"),
    (["--head", "loss=hinge"], "unknown loss 'hinge'"),
    (["--head", "kernel_initializer=lecun_banana"], "unknown initializer 'lecun_banana'"),
    (["--head", "bias_initializer=random_normal(stddev=1;spread=2)"], "got 'spread'"),
    (["--head", "hidden=64:swish"], "unknown hidden layer activation 'swish'"),
    # valid, but over the server's budget (lib/common/budget.py): refused before any feature is extracted
    (["--head", "pooling=flatten,hidden=4096:relu;4096:relu;4096:relu;4096:relu"], "(HEADLAB_MAX_PARAMS)"),
    (["--head", "optimizer=lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--seed", "1.5"], "invalid int value: '1.5'"),
    (["--head", "x" * BIG], "needs the form key=value"),
    (["--head", "hidden=" + "8:relu;" * (BIG // 7)], "at most 4 hidden layers"),
    (["--head", "learning_rate=" + "9" * BIG], "learning_rate must be a number in (0, 10]"),
    (["--head", "units=" + "9" * BIG], "units must be a whole number"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_CALLS, ids=[f"{a[0]}={a[1][:20]}" for a, _ in BAD_CALLS])
def test_absurd_cli_settings_exit_2_with_one_line(args, fragment):
    t0 = time.monotonic()
    result = run_cli("sweep", "--task", "binary", "--size", "64", "--quiet", *args)
    assert time.monotonic() - t0 < 60
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and fragment in lines[0], result.stderr[:2000]
    assert "Traceback" not in result.stderr


def test_negative_seed_is_a_config_error(toy, tiny_backbone):
    with pytest.raises(ConfigError):
        train([default_head("binary")], toy("binary"), epochs=1, seed=-1, loaded=tiny_backbone)


def test_error_line_for_a_huge_head_string_stays_short():
    result = run_cli("sweep", "--task", "binary", "--quiet", "--head", "x" * BIG)
    assert result.returncode == 2 and len(error_lines(result.stderr)[0]) < 1000


# ---- absurd shareable links ------------------------------------------------------------------------------

def head_link(d: dict) -> str:
    """What HeadConfig.to_url makes, for a dict it would never write."""
    raw = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def from_query_quickly(params) -> tuple[Experiment, list[str]]:
    t0 = time.monotonic()
    exp, notices = from_query(params)
    assert time.monotonic() - t0 < 2.0
    assert isinstance(exp, Experiment) and exp.heads
    assert all(isinstance(n, str) and n for n in notices)
    return exp, notices


def test_head_link_helper_matches_to_url():
    config = default_head("multiclass", units=7, hidden=((16, "relu"),))
    assert head_link({k: v for k, v in config.to_dict().items()
                      if k == "task" or v != HeadConfig(task="multiclass").to_dict()[k]}) == config.to_url()


@pytest.mark.parametrize("params", [
    {"task": "binary", "epochs": "x" * 100_000},
    {"task": "binary", "h": ["A" * 50] * 2000},
    {"task": "binary", "seed": "s" * 7000},
], ids=["100kB-epochs", "2000-heads-100kB", "7kB-seed"])
def test_huge_queries_fall_back_to_defaults(params):
    exp, notices = from_query_quickly(params)
    assert notices and exp.epochs == Experiment().epochs


def test_thousands_of_tiny_head_values_are_left_out_with_notices():
    exp, notices = from_query_quickly({"task": "binary", "h": ["x"] * 3000})
    assert exp.heads == (default_head("binary"),) and notices


def test_many_valid_heads_are_capped():
    link = default_head("binary", units=1).to_url()
    exp, notices = from_query_quickly({"task": "binary", "h": [link] * 100})
    assert len(exp.heads) == 6 and any("keeping the first" in n for n in notices)


@pytest.mark.parametrize(("head", "fragment"), [
    ({"task": "binary", "units": 10**6}, "units must be a whole number from 1 to 4096"),
    ({"task": "binary", "learning_rate": 1e9}, "learning_rate"),
    ({"task": "binary", "unfrozen": -5}, "unfrozen"),
    ({"task": "binary", "activation": "swish"}, "unknown activation"),
    ({"task": "binary", "dropout": 1.5}, "dropout"),
    ({"task": "binary", "hidden": [[10**6, "relu"]]}, "hidden layer units"),
    ({"task": "binary", "kernel_initializer": "random_normal(stddev=1e999)"}, "finite"),
    ({"task": "binary", "units": "1"}, "units"),
    ({"task": "binary", "rm -rf": 1}, "unknown head setting"),
])
def test_absurd_values_inside_a_head_link_are_left_out(head, fragment):
    exp, notices = from_query_quickly({"task": "binary", "h": [head_link(head)]})
    assert exp.heads == (default_head("binary"),)
    assert len(notices) == 1 and fragment in notices[0], notices


def test_a_numeric_hidden_inside_a_head_link_is_left_out():
    exp, notices = from_query({"task": "binary", "h": [head_link({"task": "binary", "hidden": 5})]})
    assert exp.heads == (default_head("binary"),) and notices


@pytest.mark.parametrize(("params", "expect"), [
    ({"seed": "twelve"}, {"seed": 0}),
    ({"seed": "1e3"}, {"seed": 0}),
    ({"seed": "-7"}, {"seed": 0}),
    ({"seed": "9" * 4400}, {"seed": 0}),  # beyond Python's int-from-string digit limit
    ({"seed": str(2**64)}, {"seed": 2**31 - 1}),
    ({"epochs": str(10**6)}, {"epochs": 200}),
    ({"epochs": "-3"}, {"epochs": 1}),
    ({"epochs": "NaN"}, {"epochs": 20}),
    ({"size": "100000"}, {"input_size": max(REGISTRY[Experiment().backbone].sizes())}),
    ({"task": "ternary"}, {"task": "binary"}),
    ({"bb": "../../etc/passwd"}, {"backbone": Experiment().backbone}),
])
def test_absurd_numbers_and_names_are_clamped_with_a_notice(params, expect):
    exp, notices = from_query_quickly(params)
    assert notices
    for key, value in expect.items():
        assert getattr(exp, key) == value, (key, getattr(exp, key), notices)


# ---- two sweeps at once -----------------------------------------------------------------------------------

def _fingerprint(sweep) -> list:
    return [(r.status, r.history["loss"], r.history["val_loss"], r.final) for r in sweep.runs]


def test_concurrent_sweeps_in_two_threads_match_running_alone(tiny_backbone):
    """The pool of compiled heads is shared process-wide; two sessions training heads of the same
    structure at once must each get their own and produce exactly what they produce alone."""
    heads = [default_head("binary"), default_head("binary", hidden=((8, "relu"),), learning_rate=0.01)]
    # same shapes, so both sweeps want the same pooled compiled graphs at the same time
    jobs = {"a": (toy_data("binary", n=64, seed=1), 1), "b": (toy_data("binary", n=64, seed=9), 2)}
    alone = {k: _fingerprint(train(heads, d, epochs=2, seed=s, loaded=tiny_backbone)) for k, (d, s) in jobs.items()}

    together: dict[str, list] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(key):
        data, seed = jobs[key]
        try:
            barrier.wait()
            together[key] = _fingerprint(train(heads, data, epochs=2, seed=seed, loaded=tiny_backbone))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert together == alone
    assert alone["a"] != alone["b"]


# ---- the training gate ------------------------------------------------------------------------------------

def test_training_gate_one_slot_five_threads_fifo():
    gate = TrainingGate(1)
    n = 5
    order: list[int] = []
    places: dict[int, list[int]] = {i: [] for i in range(n)}
    holding = [0]
    max_holding = [0]
    lock = threading.Lock()
    release_first = threading.Event()

    def worker(i: int) -> None:
        with gate.slot(on_wait=places[i].append, poll=0.05):
            with lock:
                holding[0] += 1
                max_holding[0] = max(max_holding[0], holding[0])
                order.append(i)
            if i == 0:
                release_first.wait(timeout=30)  # everyone else queues behind the first
            else:
                time.sleep(0.02)
            with lock:
                holding[0] -= 1

    threads = []
    for i in range(n):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        # enter one by one so arrival order is known
        deadline = time.monotonic() + 10
        while gate.waiting() + gate.running() < i + 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    assert gate.running() == 1 and gate.waiting() == n - 1
    release_first.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()

    assert order == list(range(n))
    assert max_holding[0] == 1
    assert gate.running() == 0 and gate.waiting() == 0
    assert places[0] == []
    for i in range(1, n):
        assert places[i][0] == i, places  # queued behind i others: place i (1 = next)
        assert places[i] == sorted(places[i], reverse=True) and len(set(places[i])) == len(places[i])
