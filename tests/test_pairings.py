"""The pairing table: every combination answered, and the known mismatches get the right level."""

import pytest

from lib.heads.config import HeadConfig
from lib.heads.pairings import LEVELS, PROBLEMS, all_combinations, judge, table_rows, verdict_for

N_OUT = {"binary": 1, "multiclass": 5, "multilabel": 4, "regression": 1}


@pytest.mark.parametrize("task", list(N_OUT))
def test_every_combination_has_a_complete_verdict(task):
    combos = list(all_combinations(task, N_OUT[task]))
    assert len(combos) >= 5 * 6 * 2 * 3 * 2
    for units, act, loss, logits, labels in combos:
        v = judge(task, units, N_OUT[task], act, loss, logits, labels, backend="tensorflow")
        assert v.level in LEVELS
        assert v.codes and all(c in PROBLEMS for c in v.codes)
        assert v.message.strip() and all(s.strip() for s in v.symptoms) and all(k for k in v.knobs)
        # an 'ok' verdict carries only ok codes, anything else names a problem
        assert (v.level == "ok") == all(PROBLEMS[c].level == "ok" for c in v.codes)


def test_every_problem_code_is_reachable():
    seen = set()
    for task, n in N_OUT.items():
        for units, act, loss, logits, labels in all_combinations(task, n):
            seen.update(judge(task, units, n, act, loss, logits, labels).codes)
    assert seen == set(PROBLEMS)


@pytest.mark.parametrize(("task", "units", "act", "loss", "logits", "labels", "level", "code"), [
    # the seed article's claim: a sigmoid head with BCE on a frozen base is *correct*
    ("binary", 1, "sigmoid", "binary_crossentropy", False, "auto", "ok", "ok_sigmoid_bce"),
    ("binary", 2, "softmax", "sparse_categorical_crossentropy", False, "auto", "ok", "ok_softmax_ce"),
    ("binary", 1, "linear", "binary_crossentropy", True, "auto", "ok", "ok_logits"),
    ("multiclass", 5, "softmax", "categorical_crossentropy", False, "auto", "ok", "ok_softmax_ce"),
    ("multilabel", 4, "sigmoid", "binary_crossentropy", False, "auto", "ok", "ok_multilabel"),
    ("regression", 1, "linear", "huber", False, "auto", "ok", "ok_regression"),
    # softmax over one unit: always 1.0
    ("binary", 1, "softmax", "binary_crossentropy", False, "auto", "error", "softmax_one_unit"),
    # sigmoid outputs with categorical cross-entropy
    ("multiclass", 5, "sigmoid", "categorical_crossentropy", False, "auto", "warning", "sigmoid_with_cce"),
    # softmax for multi-label
    ("multilabel", 4, "softmax", "binary_crossentropy", False, "auto", "error", "softmax_multilabel"),
    # a linear output with a loss that expects probabilities
    ("binary", 1, "linear", "binary_crossentropy", False, "auto", "error", "linear_probabilities"),
    ("multiclass", 5, "linear", "sparse_categorical_crossentropy", False, "auto", "error", "linear_probabilities"),
    # probabilities fed to a loss told from_logits=True
    ("binary", 1, "sigmoid", "binary_crossentropy", True, "auto", "warning", "probabilities_as_logits"),
    ("multiclass", 5, "softmax", "categorical_crossentropy", True, "auto", "warning", "probabilities_as_logits"),
    # bounded outputs for unbounded regression targets
    ("regression", 1, "relu", "mse", False, "auto", "warning", "relu_regression"),
    ("regression", 1, "sigmoid", "mse", False, "auto", "error", "sigmoid_regression"),
    ("regression", 1, "tanh", "mae", False, "auto", "error", "tanh_regression"),
    # integer labels with the one-hot loss, and vice versa
    ("multiclass", 5, "softmax", "categorical_crossentropy", False, "integer", "error", "integer_labels_onehot_loss"),
    ("multiclass", 5, "softmax", "sparse_categorical_crossentropy", False, "one_hot", "error", "onehot_labels_sparse_loss"),
    ("multiclass", 5, "relu", "categorical_crossentropy", False, "auto", "error", "relu_ce"),
    ("multiclass", 3, "softmax", "sparse_categorical_crossentropy", False, "auto", "error", "units_too_few_sparse"),
    ("multilabel", 4, "sigmoid", "sparse_categorical_crossentropy", False, "auto", "error", "sparse_multilabel"),
    ("regression", 1, "linear", "binary_crossentropy", False, "auto", "error", "ce_for_regression"),
    ("multiclass", 5, "softmax", "mse", False, "auto", "warning", "regression_loss_for_classes"),
])
def test_known_pairings(task, units, act, loss, logits, labels, level, code):
    v = judge(task, units, N_OUT[task], act, loss, logits, labels, backend="tensorflow")
    assert code in v.codes
    assert v.level == level


def test_texts_describe_the_backend_in_use():
    tf_v = judge("binary", 1, 1, "softmax", "binary_crossentropy", False, backend="tensorflow")
    jax_v = judge("binary", 1, 1, "softmax", "binary_crossentropy", False, backend="jax")
    assert "TensorFlow" in tf_v.message and "loss still falls" in tf_v.message
    assert "TensorFlow" not in jax_v.message and tf_v.backend == "tensorflow" and jax_v.backend == "jax"


def test_config_verdict_uses_the_natural_unit_count():
    cfg = HeadConfig(task="multiclass", activation="softmax", loss="categorical_crossentropy")
    assert verdict_for(cfg, 5).level == "ok"
    assert verdict_for(cfg.with_(units=1), 5).level == "error"


def test_table_rows_cover_the_grid():
    rows = table_rows("multiclass", 5)
    assert len(rows) == len(list(all_combinations("multiclass", 5)))
    assert {r["level"] for r in rows} == set(LEVELS)
