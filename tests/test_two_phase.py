"""The two-phase head (the Keras transfer-learning guide's recipe): its setting, its training, its cost."""

import numpy as np
import pytest

from lib.common.errors import ConfigError
from lib.heads.config import HeadConfig, parse_head_string
from lib.lessons import epoch_time_text
from lib.train.cost import estimate
from lib.train.reference import fit_two_phase
from lib.train.trainer import RunResult, train

SPEC = "hidden=8:relu,learning_rate=0.003,unfrozen=12,fine_tune_epochs=2,fine_tune_learning_rate=3e-5"
# How close the trainer's two phases come to plain Keras's model.fit + recompile + model.fit. Phase 1 is
# the frozen-base fast path (FROZEN_RTOL in test_training.py: the cached features differ in the last bits);
# phase 2 trains 20 layers from cached cut activations, BatchNorm in inference mode, so no batch statistics
# amplify those bits (test_training's FINE_TUNE_RTOL case has them in training mode). Measured at most
# 1.1e-4 (oneDNN, on a validation loss of 1e-4); rtol 1e-3 leaves 9× room for other kernels (Eigen was
# 1.5× oneDNN's difference in the fine-tuning case) and still fails for a phase 2 that started from a
# random head or ran BatchNorm on batch statistics (losses several times apart).
TWO_PHASE_RTOL = 1e-3


def _url_keys(cfg: HeadConfig) -> set[str]:
    import base64
    import json
    import zlib

    s = cfg.to_url()
    return set(json.loads(zlib.decompress(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))))


@pytest.fixture(scope="module")
def sweep(toy, tiny_backbone):
    cfgs = [parse_head_string("binary", "hidden=8:relu,learning_rate=0.003"), parse_head_string("binary", SPEC)]
    return train(cfgs, toy("binary"), epochs=2, seed=4, loaded=tiny_backbone, shuffle=False)


def test_the_setting_round_trips_and_is_validated():
    cfg = parse_head_string("binary", SPEC)
    assert cfg.two_phase and cfg.fine_tune_epochs == 2 and cfg.fine_tune_learning_rate == pytest.approx(3e-5)
    assert HeadConfig.from_url(cfg.to_url()) == cfg == HeadConfig.from_dict(cfg.to_dict())
    assert cfg.phase1() == cfg.with_(unfrozen=0, fine_tune_epochs=0)
    assert cfg.phase2() == cfg.with_(fine_tune_epochs=0, learning_rate=3e-5)
    assert cfg.total_epochs(5) == 7 and parse_head_string("binary", "unfrozen=12").total_epochs(5) == 5
    old = parse_head_string("binary", "unfrozen=12")  # a one-phase head's link is what it was before
    assert not old.two_phase and _url_keys(old) == {"task", "unfrozen"}
    assert _url_keys(cfg) >= {"fine_tune_epochs", "fine_tune_learning_rate"}
    with pytest.raises(ConfigError, match="needs unfrozen"):
        parse_head_string("binary", "fine_tune_epochs=2")
    with pytest.raises(ConfigError, match="fine_tune_learning_rate"):
        parse_head_string("binary", "unfrozen=5,fine_tune_epochs=1,fine_tune_learning_rate=0")
    with pytest.raises(ConfigError, match="fine_tune_epochs"):
        parse_head_string("binary", "unfrozen=5,fine_tune_epochs=1000")


def test_phase_one_is_the_frozen_head_and_phase_two_starts_from_its_weights(sweep):
    frozen, two = sweep.runs
    assert frozen.status == two.status == "ok", two.error
    assert two.history["epoch"] == [1, 2, 3, 4] and two.history["phase"] == [1, 1, 2, 2]
    assert two.phase_boundary == 2 and frozen.phase_boundary is None
    # phase 1 trains on the frozen base's cached features as the frozen head does. The frozen head trains in a
    # stack (one batched matmul over a head axis) and phase 1 head by head, so the sums run in another order:
    # CI measured 6e-8 relative; 1e-5 leaves room for other CPUs and still catches a different start or data
    assert two.history["loss"][:2] == pytest.approx(frozen.history["loss"], rel=1e-5)
    assert two.history["val_loss"][:2] == pytest.approx(frozen.history["val_loss"], rel=1e-5)
    # phase 2's model (20 more layers, on the cut's features) predicts before its first step what phase 1
    # ended with: the head's weights were carried over (a random head would start near 0.69)
    start = two.final["fine_tune_start_val_loss"]
    assert start == pytest.approx(frozen.history["val_loss"][-1], rel=1e-4)
    assert "then top 20 layers unfrozen" in two.cut
    assert len(two.epoch_seconds) == 4 and all(t > 0 for t in two.epoch_seconds)


def test_two_phases_match_plain_keras_fit_then_recompile_then_fit(sweep, toy, tiny_backbone):
    ref = fit_two_phase(parse_head_string("binary", SPEC), toy("binary"), tiny_backbone, epochs=2, seed=4)
    fast = sweep.runs[1].history
    assert ref["phase"] == fast["phase"]
    np.testing.assert_allclose(fast["loss"], ref["loss"], rtol=TWO_PHASE_RTOL, atol=1e-6)
    np.testing.assert_allclose(fast["val_loss"], ref["val_loss"], rtol=TWO_PHASE_RTOL, atol=1e-6)
    assert fast["loss"][3] != pytest.approx(fast["loss"][1], rel=1e-3)  # phase 2 really trained something


def test_phase_two_keeps_batchnorm_frozen(toy, tiny_backbone):
    from lib.backbones.features import find_cut
    from lib.heads.build import build_head

    cfg = parse_head_string("binary", SPEC).phase2()
    cut = find_cut(tiny_backbone.model, cfg.unfrozen)
    shape = tuple(tiny_backbone.model.layers[cut.index].output.shape[1:])
    built = {f: build_head(cfg, shape, 1, toy("binary").y, 0, tiny_backbone.model, cut.index, freeze_batchnorm=f)[0]
             for f in (False, True)}
    bn = [layer for layer in built[True].layers if "BatchNormalization" in type(layer).__name__]
    assert bn and not any(layer.trainable for layer in bn)
    n_bn = sum(len(layer.trainable_weights) for layer in built[False].layers if layer.name in {b.name for b in bn})
    assert len(built[True].trainable_weights) == len(built[False].trainable_weights) - n_bn


def test_the_estimate_counts_both_phases(toy, tiny_backbone):
    two = parse_head_string("binary", SPEC)
    est = estimate([two], toy("binary"), tiny_backbone, epochs=3)
    frozen = estimate([two.phase1()], toy("binary"), tiny_backbone, epochs=3).heads[0]
    fine = estimate([two.phase2()], toy("binary"), tiny_backbone, epochs=2).heads[0]
    assert est.cuts == 2  # the frozen base's features for phase 1, the cut's for phase 2
    assert est.heads[0].macs == frozen.macs + fine.macs
    assert est.heads[0].trainable == fine.trainable
    assert est.heads[0].state_bytes == frozen.state_bytes + fine.state_bytes


def test_seconds_per_epoch_leave_out_each_phases_tracing_epoch(tiny_backbone):
    cfg = parse_head_string("binary", SPEC)
    run = RunResult(config=cfg, verdict=None, history={"epoch": [1, 2, 3, 4, 5], "phase": [1, 1, 1, 2, 2]},
                    epoch_seconds=[5.0, 0.01, 0.03, 9.0, 1.0])
    assert run.seconds_per_epoch(1) == pytest.approx(0.02) and run.seconds_per_epoch(2) == pytest.approx(1.0)
    assert run.phase_boundary == 3
    one = RunResult(config=cfg.phase1(), verdict=None, history={"epoch": [1], "phase": [1]}, epoch_seconds=[0.5])
    assert one.seconds_per_epoch() == 0.5  # a single epoch is all there is


def test_epoch_time_text_names_each_phase_and_the_ratio(sweep):
    text = epoch_time_text(sweep)
    assert text.startswith("Seconds per epoch") and " then " in text
    assert f"1. {sweep.runs[0].label}: " in text and f"2. {sweep.runs[1].label}: " in text


def test_charts_reach_the_fine_tuning_epochs_and_mark_where_they_begin(sweep):
    from lib.report.curves import loss_curves

    fig = loss_curves(sweep)
    assert tuple(fig.layout.xaxis.range) == (0.5, 4.5)
    lines = [sh for sh in fig.layout.shapes if sh.type == "line" and sh.line.dash == "dash"]
    assert [line.x0 for line in lines] == [2.5]
    assert any(a.text == "fine-tuning →" for a in fig.layout.annotations)


def test_the_lessons_page_shows_the_seconds_per_epoch_of_the_fine_tuning_lesson():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/lessons.py", default_timeout=240)
    at.query_params.update({"lesson": "fine-tuning"})
    at.run()
    assert not at.exception
    cards = " ".join(c.value for c in at.caption)
    assert "frozen, then 20 layers unfrozen for 2 epochs at lr 1e-05" in cards
    at.button(key="run-lesson").click().run()
    assert not at.exception
    times = [c.value for c in at.caption if "Seconds per epoch" in c.value]
    assert len(times) == 1 and "Example 3" in times[0] and " then " in times[0], times


def test_the_sweep_json_carries_phases_and_seconds_per_epoch(sweep):
    import json

    from lib.report.results import sweep_to_dict

    run = json.loads(json.dumps(sweep_to_dict(sweep)))["runs"][1]
    assert run["history"]["phase"] == [1, 1, 2, 2] and len(run["epoch_seconds"]) == 4
    assert run["config"]["fine_tune_epochs"] == 2
