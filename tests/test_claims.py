"""Every sentence of the pairing table and every run symptom, checked against a real run on each backend
it speaks of (lib/train/claims.py): TensorFlow through Head Lab's trainer, JAX through plain Keras in a
`KERAS_BACKEND=jax` subprocess, both on the bundled MobileNetV2's features (64 px) from the same weights.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lib.heads.pairings import MEASURED_BACKENDS, PROBLEMS, judge
from lib.train import claims as C
from lib.train.diagnostics import SYMPTOMS

# On JAX the suite measures the rows whose wording differs from TensorFlow's (each JAX head costs ~1.5 s of
# XLA compiling); `python -m lib.train.claims` measures every row on both backends (README, "What Keras
# really does").
JAX_CLAIMS = [c for c in C.claims_for(C.JAX) if PROBLEMS[c.code].differs_by_backend()]
TF_CLAIMS = C.claims_for(C.TF)


@pytest.fixture(scope="module")
def measured(tiny_backbone):
    """Both backends' runs: the JAX subprocess works while this process trains the TensorFlow heads."""
    datasets = C.probe_datasets(sorted({c.sample for c in JAX_CLAIMS}), tiny_backbone)
    with ThreadPoolExecutor(1) as pool:
        jax_runs = pool.submit(C.run_on_jax, JAX_CLAIMS, datasets)
        tf_runs = C.run_on_tensorflow(TF_CLAIMS, tiny_backbone)
        return {C.TF: tf_runs, C.JAX: jax_runs.result()}


@pytest.mark.parametrize("claim", TF_CLAIMS + JAX_CLAIMS, ids=lambda c: c.id)
def test_the_claim_holds_on_a_run(claim, measured):
    holds, evidence = C.evaluate(claim, measured[claim.backend])
    assert holds, f"{claim.code} on {claim.backend} ({claim.sample}, head {claim.head!r}): {evidence}"


def test_the_runs_are_on_the_backend_each_claim_speaks_of(measured):
    for backend, runs in measured.items():
        probe = next(iter(runs.values()))
        assert probe.backend == backend and probe.versions["keras"].startswith("3.")
    assert measured[C.JAX][("fashion/binary", "")].versions["jax"].startswith("0.")


def test_every_row_has_a_run_on_every_measured_backend():
    for code in PROBLEMS:
        for backend in MEASURED_BACKENDS:
            assert any(c.code == code and c.backend == backend and c.kind == "problem" for c in C.CLAIMS), (code, backend)


def test_every_symptom_has_a_run_that_shows_it():
    source = Path("lib/train/diagnostics.py").read_text()
    assert set(re.findall(r'_symptom\("([a-z_]+)"', source)) == set(SYMPTOMS)
    assert {c.code for c in C.CLAIMS if c.kind == "symptom"} == set(SYMPTOMS)


@pytest.mark.parametrize("claim", [c for c in C.CLAIMS if c.kind == "problem"], ids=lambda c: c.id)
def test_each_claim_measures_words_of_its_rows_text_on_its_backend(claim):
    """Rewording a row without revisiting its check fails here, and so does a check of the wrong backend."""
    message, symptom = PROBLEMS[claim.code].text(claim.backend)
    assert claim.says, claim.id
    for words in claim.says:
        assert words in f"{message} {symptom}", (claim.id, words)


@pytest.mark.parametrize("claim", [c for c in C.CLAIMS if c.kind == "problem"], ids=lambda c: c.id)
def test_each_claims_head_is_one_the_row_judges(claim):
    config = claim.config
    n = {"binary": 1, "multiclass": 10, "multilabel": 4, "regression": 1}[config.task]
    verdict = judge(config.task, config.resolved_units(n), n, config.activation, config.loss, config.from_logits,
                    config.labels, backend=claim.backend)
    assert claim.code in verdict.codes, (claim.id, verdict.codes)


def test_a_row_that_names_tensorflow_says_what_jax_does():
    for code, problem in PROBLEMS.items():
        if "TensorFlow" in problem.message + problem.symptom and "JAX" not in problem.message:
            assert problem.differs_by_backend(), code
        if problem.differs_by_backend():
            assert "TensorFlow" not in problem.message_jax + problem.symptom_jax, code


def test_a_backend_nobody_measured_is_told_so():
    message, _ = PROBLEMS["units_too_few_sparse"].text("torch")
    assert "not measured this on torch" in message and "JAX" in message
    assert "not measured" not in PROBLEMS["units_too_few_sparse"].text("jax")[0]


def test_loss_zero_while_the_weights_move_is_told_apart_from_nothing_moving(measured):
    """The same loss of 0: a sigmoid output moves (TensorFlow's fused kernel), a linear one does not, and only
    the first is the new symptom; the textbook head shows neither."""
    tf = measured[C.TF]
    moving = tf[("fashion/binary", "loss=categorical_crossentropy,labels=integer")]
    still = tf[("fashion/binary", "loss=categorical_crossentropy,labels=integer,activation=linear")]
    assert "zero_loss_moving" in moving.symptoms and "no_gradient" not in moving.symptoms
    assert "no_gradient" in still.symptoms and "zero_loss_moving" not in still.symptoms
    assert not {"zero_loss_moving", "no_gradient"} & set(tf[("fashion/binary", "")].symptoms)
