"""The float-sensitive tests, run again on TensorFlow's other CPU kernels.

TensorFlow uses oneDNN's kernels on some CPUs (e.g. with AVX-512) and Eigen's on others (e.g. an AMD
EPYC without AVX-512), and they round differently: softmax over one unit is 1.0 with one and
0.99999994 with the other. CI runs on whichever x86-64 machine it gets, so tests that passed on one
kind failed on the other. TF_ENABLE_ONEDNN_OPTS switches between the two on any machine: this test runs
the tests that compare kernel-computed values with the setting flipped, so both kinds are checked in
every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Every test that compares a value a kernel computed with an expected value (not with itself).
FLOAT_SENSITIVE = [
    "tests/test_training.py::test_softmax_over_one_unit_outputs_one_while_its_loss_falls",
    "tests/test_training.py::test_fast_path_matches_model_fit_of_the_whole_model",
    "tests/test_plots.py::test_softmax_over_one_unit_sums_to_one",
    "tests/test_cli.py::test_sweep_writes_the_documented_json",
    "tests/test_lessons.py::test_lesson_finding_holds[softmax-one-unit]",
    "tests/test_lessons.py::test_lesson_finding_holds[from-logits]",
]


def _flipped() -> str:
    """The TF_ENABLE_ONEDNN_OPTS value that gives the kernels this process does not use."""
    # TensorFlow's own answer to "is oneDNN on in this process" (an internal module; TF is pinned)
    from tensorflow.python.util import _pywrap_util_port

    return "0" if _pywrap_util_port.IsMklEnabled() else "1"


def test_float_sensitive_tests_pass_on_the_other_kernels(tmp_path):
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": _flipped()}
    env.pop("HEADLAB_CACHE", None)  # the child's conftest makes its own
    # pytest-playwright empties its --output folder (test-results/) when a session starts: the child's
    # gets its own, so the browser tests' screenshots of this run stay there to be looked at.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                           "--output", str(tmp_path / "playwright"), *FLOAT_SENSITIVE],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
    assert proc.returncode == 0, f"with TF_ENABLE_ONEDNN_OPTS={env['TF_ENABLE_ONEDNN_OPTS']}:\n{tail}"
    assert f"{len(FLOAT_SENSITIVE) + 2} passed" in tail  # the fast-path test has three cases
