"""What the loss saw (lib/train/loss_seen.py): measured per run, top losses, confidently-wrong counts, snapshots."""

import numpy as np
import pytest

from lib.heads.config import parse_head_string
from lib.train.loss_seen import (
    LABELS,
    clipped,
    confidently_wrong,
    loss_view,
    measure_loss_used,
    sample_losses,
    top_losses,
)
from lib.train.metrics import binary_auc, float_equal
from lib.train.trainer import MAX_SNAPSHOT_EPOCHS, snapshot_epochs, train


def heads(task, *specs):
    return [parse_head_string(task, s) for s in specs]


@pytest.fixture(scope="module")
def binary_sweep(toy, tiny_backbone):
    cfgs = heads("binary", "activation=softmax,units=1", "activation=sigmoid", "activation=linear,from_logits=true",
                 "activation=linear", "activation=sigmoid,from_logits=true", "activation=relu")
    return train(cfgs, toy("binary"), epochs=6, seed=0, loaded=tiny_backbone)


def test_softmax_over_one_unit_the_loss_read_logits_that_separate_classes_while_every_output_is_1(binary_sweep):
    run = binary_sweep.runs[0]
    used = run.loss_used
    assert used.label == "pre_activation" and used.clarity == "clear", used.statement
    assert "pre-softmax" in used.statement
    # the outputs reading is far from what training reported; the pre-activation one reproduces it
    assert used.candidates["pre_activation"] == pytest.approx(used.reported, rel=1e-3)
    assert abs(used.candidates["outputs"] - used.reported) > 1.0
    last = max(run.snapshots)
    assert np.all(float_equal(run.snapshots[last], 1.0))  # predict(): 1 for every image
    seen = loss_view(run.config, used.label, run.snapshots[last], run.pre_activations[last])[:, 0]
    assert binary_auc(binary_sweep.y_val, seen) > 0.9  # ...while the values the loss used tell the classes apart


def test_sigmoid_bce_reads_pre_activation_values_and_says_how_clear_that_is(binary_sweep):
    used = binary_sweep.runs[1].loss_used
    # Away from saturation both readings give the loss to float precision: decided per image, evidence weak
    # or clear (depending on how far the draw saturated), never unknown.
    assert used.label == "pre_activation" and used.clarity in ("weak", "clear"), used.statement
    if used.clarity == "weak":
        assert "evidence is weak" in used.statement


def test_linear_outputs_are_what_the_loss_read_raw_with_logits_clipped_without(binary_sweep):
    logits, raw = binary_sweep.runs[2].loss_used, binary_sweep.runs[3].loss_used
    assert (logits.label, logits.clarity) == ("outputs", "single")
    assert raw.label == "clipped_outputs" and "clipped to [ε, 1−ε]" in raw.statement
    run = binary_sweep.runs[3]
    out = run.snapshots[max(run.snapshots)]
    assert out.min() < 0 or out.max() > 1  # the raw outputs leave [0, 1]...
    view = loss_view(run.config, raw.label, out, run.pre_activations[max(run.snapshots)])
    assert view.min() > 0 and view.max() < 1  # ...the values the loss used do not


def test_from_logits_true_on_a_sigmoid_output_still_reads_pre_activation_values(binary_sweep):
    used = binary_sweep.runs[4].loss_used
    assert used.label == "pre_activation" and used.clarity == "clear"
    assert "from_logits=True" in used.statement


def test_relu_bce_reads_the_clipped_outputs(binary_sweep):
    used = binary_sweep.runs[5].loss_used
    assert used.label in ("clipped_outputs", "outputs") and used.clarity == "clear", used.statement


def test_sigmoid_cce_multilabel_reads_pre_activation_values(toy, tiny_backbone):
    sweep = train(heads("multilabel", "activation=sigmoid,loss=categorical_crossentropy"), toy("multilabel"),
                  epochs=4, seed=0, loaded=tiny_backbone)
    used = sweep.runs[0].loss_used
    assert used.label == "pre_activation" and used.clarity == "clear", used.statement
    assert used.epochs_checked == 5  # epoch 0 and every trained epoch


def test_stacked_and_alone_measure_the_same_tensor(toy, tiny_backbone):
    cfgs = heads("binary", "activation=softmax,units=1", "activation=linear", "activation=sigmoid,from_logits=true")
    a = train(cfgs, toy("binary"), epochs=3, seed=2, loaded=tiny_backbone, stacked=False)
    s = train(cfgs, toy("binary"), epochs=3, seed=2, loaded=tiny_backbone, stacked=True)
    for ra, rs in zip(a.runs, s.runs, strict=True):
        assert ra.loss_used.label == rs.loss_used.label, ra.label
        for e in ra.pre_activations:  # rtol: stacked vs alone matmul kernels (see test_stacked's RTOL)
            np.testing.assert_allclose(ra.pre_activations[e], rs.pre_activations[e], rtol=1e-3, atol=1e-5)


def _fake_run(z, y, reported_fn):
    """Arrays as a run holds them, at two epochs, with a chosen 'reported' loss."""
    import keras

    z = np.asarray(z, np.float32)
    out = np.asarray(keras.ops.sigmoid(z))
    return {0: out, 1: out}, {0: z, 1: z}, {0: reported_fn(out, z), 1: reported_fn(out, z)}


def test_a_loss_no_reading_reproduces_is_unknown_and_says_both_numbers():
    config = parse_head_string("binary", "activation=sigmoid")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (50, 1)).astype(np.float32)
    snaps, pre, reported = _fake_run(rng.normal(0, 3, (50, 1)), y, lambda out, z: 42.0)
    used = measure_loss_used(config, y, snaps, pre, reported)
    assert used.label == "unknown" and "Neither reading reproduces" in used.statement and "42" in used.statement


def test_saturated_sigmoid_decides_clearly_from_the_means():
    import keras

    config = parse_head_string("binary", "activation=sigmoid")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (50, 1)).astype(np.float32)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    # |z| of 30: sigmoid rounds to exactly 0 or 1 in float32, so the clipped outputs lose what the logits keep
    snaps, pre, reported = _fake_run(rng.choice([-30.0, 30.0], (50, 1)), y, lambda out, z: float(bce(y, z)))
    used = measure_loss_used(config, y, snaps, pre, reported)
    assert (used.label, used.clarity) == ("pre_activation", "clear")
    outs_config = parse_head_string("binary", "activation=sigmoid")
    bce_out = keras.losses.BinaryCrossentropy()
    snaps, pre, reported = _fake_run(rng.choice([-30.0, 30.0], (50, 1)), y,
                                     lambda out, z: float(bce_out(y, np.asarray(out))))
    used = measure_loss_used(outs_config, y, snaps, pre, reported)
    assert used.label == "clipped_outputs" and clipped(outs_config, snaps[1])


def test_no_finite_epoch_is_unknown_not_an_exception():
    config = parse_head_string("binary", "activation=sigmoid")
    y = np.zeros((4, 1), np.float32)
    nan = np.full((4, 1), np.nan, np.float32)
    used = measure_loss_used(config, y, {1: nan}, {1: nan}, {1: float("nan")})
    assert used.label == "unknown" and used.epochs_checked == 0
    assert set(LABELS) >= {used.label}


def test_top_losses_rank_worst_first_ties_by_index_and_bound_the_count():
    losses = np.array([0.1, 3.0, 0.5, 3.0, 2.0])
    assert top_losses(losses, k=3) == [(1, 3.0), (3, 3.0), (4, 2.0)]
    assert top_losses(losses) == [(1, 3.0), (3, 3.0), (4, 2.0), (2, 0.5), (0, 0.1)]
    assert top_losses(None) == []


def test_sample_losses_are_the_heads_own_loss_on_predict_outputs_and_abs_error_for_regression():
    config = parse_head_string("binary", "activation=sigmoid")
    out = np.array([[0.9], [0.2], [0.6]], np.float32)
    y = np.array([0, 0, 1])
    values = sample_losses(config, y.reshape(-1, 1).astype(np.float32), y, out)
    np.testing.assert_allclose(values, -np.log([0.1, 0.8, 0.6]), rtol=1e-5)  # float32 log: ~1e-7 relative
    assert [i for i, _ in top_losses(values)] == [0, 2, 1]
    reg = parse_head_string("regression", "")
    np.testing.assert_allclose(sample_losses(reg, None, np.array([10.0, 5.0]), np.array([[12.0], [1.0]])), [2.0, 4.0])
    assert sample_losses(config, y.reshape(-1, 1), y, np.full((3, 1), np.nan)) is None


def test_confidently_wrong_counts_for_each_kind_of_head():
    one = parse_head_string("binary", "activation=sigmoid")
    y = np.array([0, 0, 1, 1, 0])
    # wrong at >= 0.9 (image 0), wrong at <= 0.1 (image 2), wrong but unsure (image 4), right and sure (1, 3)
    out = np.array([[0.95], [0.02], [0.05], [0.99], [0.7]])
    assert confidently_wrong(one, out, y) == 2
    assert confidently_wrong(one, np.ones((5, 1)), y) == 3  # softmax over one unit: every negative
    multi = parse_head_string("multiclass", "activation=softmax")
    probs = np.array([[0.92, 0.04, 0.04], [0.5, 0.3, 0.2], [0.05, 0.05, 0.9]])
    assert confidently_wrong(multi, probs, np.array([1, 1, 2])) == 1
    logits = parse_head_string("multiclass", "activation=linear,from_logits=true")
    assert confidently_wrong(logits, np.log(probs), np.array([1, 1, 2])) == 1  # read as softmax of the logits
    ml = parse_head_string("multilabel", "activation=sigmoid")
    assert confidently_wrong(ml, np.array([[0.95, 0.05], [0.5, 0.99]]), np.array([[0, 1], [1, 1]])) == 2
    assert confidently_wrong(parse_head_string("regression", ""), np.ones((2, 1)), np.ones(2)) is None
    assert confidently_wrong(one, np.full((5, 1), np.nan), y) is None


def test_snapshots_keep_every_epoch_up_to_the_bound_then_thin_evenly():
    assert snapshot_epochs(7) == list(range(8))
    assert snapshot_epochs(MAX_SNAPSHOT_EPOCHS) == list(range(MAX_SNAPSHOT_EPOCHS + 1))
    for epochs in (51, 120, 500):
        kept = snapshot_epochs(epochs)
        assert kept[0] == 0 and kept[-1] == epochs and len(kept) == MAX_SNAPSHOT_EPOCHS + 1
        gaps = np.diff(kept[1:])
        assert gaps.max() - gaps.min() <= 1  # evenly thinned


def test_a_long_run_keeps_at_most_the_bound_of_snapshots(toy, tiny_backbone):
    sweep = train(heads("binary", "activation=sigmoid"), toy("binary"), epochs=60, seed=0, loaded=tiny_backbone)
    run = sweep.runs[0]
    assert sorted(run.snapshots) == sorted(run.pre_activations) == snapshot_epochs(60)
    assert len(run.snapshots) == MAX_SNAPSHOT_EPOCHS + 1


def test_diverged_and_refused_heads_get_no_ranking_and_no_exception(toy, tiny_backbone):
    bad = "optimizer=sgd,learning_rate=10,kernel_initializer=random_normal(stddev=100)"
    sweep = train(heads("regression", bad), toy("regression"), epochs=6, seed=1, loaded=tiny_backbone)
    run = sweep.runs[0]
    assert run.status == "diverged"
    assert run.top_losses == [] and run.confidently_wrong is None
    assert run.loss_used is not None  # measured on the epochs before it diverged
    assert run.loss_used.epochs_checked < len(run.snapshots)
    refused = train(heads("multiclass", "units=2"), toy("multiclass"), epochs=2, seed=0, loaded=tiny_backbone)
    assert refused.runs[0].status == "error"
    assert refused.runs[0].loss_used is None and refused.runs[0].top_losses == []
