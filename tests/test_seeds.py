"""Repeat over seeds: the spread's arithmetic, its bounds, real multi-seed runs, and charts that say when two
curves coincide and draw a seed band."""

from __future__ import annotations

import numpy as np
import pytest

from lib.common.errors import ConfigError
from lib.experiment import train_experiment
from lib.lessons import get_lesson
from lib.report.curves import coinciding_runs, loss_curves, metric_curves, seed_band_curves
from lib.train.seeds import MAX_SEEDS, SeedSweeps, seed_range, spread


@pytest.fixture(scope="module")
def one_unit():
    """softmax×1 next to sigmoid on the hard binary sample: 3 seeds, 5 epochs (heads only; features cached)."""
    return train_experiment(get_lesson("softmax-one-unit").experiment.with_(epochs=5), seeds=3)


@pytest.fixture(scope="module")
def two_heads():
    """sigmoid next to softmax×2: two heads that learn differently."""
    return train_experiment(get_lesson("sigmoid-vs-softmax").experiment.with_(epochs=5), seeds=1)


def test_spread_is_mean_sd_min_max():
    s = spread([0.8, 0.9, 1.0])
    assert s.mean == pytest.approx(0.9) and s.sd == pytest.approx(0.1) and (s.lo, s.hi) == (0.8, 1.0)
    assert s.text(percent=True) == "90.0% ± 10.0 pt (80.0%–100.0%)"
    assert spread([0.5]).sd == 0 and spread([0.5]).text(percent=True) == "50.0%"
    assert spread([1.0, None, float("nan")]).mean == 1.0  # a diverged seed has no final value


def test_seed_count_is_bounded():
    assert seed_range(7, 3) == [7, 8, 9]
    assert seed_range(2**31 - 1, 2) == [2**31 - 2, 2**31 - 1]  # stays a valid seed
    for bad in (0, MAX_SEEDS + 1, True, "3"):
        with pytest.raises(ConfigError, match="repeat over 1 to"):
            seed_range(0, bad)


def test_each_seed_is_its_own_run_and_reproducible(one_unit):
    assert one_unit.seeds == (0, 1, 2)
    acc = one_unit.finals(0, "val_accuracy")
    assert len(set(np.round(acc, 6))) > 1, "different seeds should give different sigmoid heads"
    again = train_experiment(get_lesson("softmax-one-unit").experiment.with_(epochs=5, seed=1), seeds=1)
    # same machine, same seed: the same curve (float tolerance: a kernel computed it)
    assert np.allclose(again.first.runs[0].history["loss"], one_unit.sweeps[1].runs[0].history["loss"], rtol=1e-6)
    x, mean, lo, hi = one_unit.curve(0, "val_accuracy")
    assert list(x) == [1, 2, 3, 4, 5]
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
    assert mean[-1] == pytest.approx(acc.mean())


def test_a_single_sweep_is_a_one_seed_repeat(two_heads):
    sweep = two_heads.first
    assert SeedSweeps.of(sweep).sweeps == (sweep,) and SeedSweeps.of(two_heads) is two_heads


def test_the_loss_chart_says_when_two_curves_coincide(one_unit, two_heads):
    sweep = one_unit.first
    assert coinciding_runs(sweep, "loss") == [[0, 1]]
    fig = loss_curves(sweep)
    note = fig.layout.title.subtitle.text.replace("<br>", " ")  # the compact chart wraps its subtitle
    assert "1. sigmoid×1 + BCE and 2. softmax×1 + BCE coincide: one line hides the other" \
        in note
    assert any(t.name.endswith("(= 2.)") for t in fig.data) and any(t.name.endswith("(= 1.)") for t in fig.data)
    # the accuracy curves differ (50% vs ~85%): no note there
    assert "coincide" not in (metric_curves(sweep).layout.title.subtitle.text or "")
    # two heads that learn differently are never called the same
    assert coinciding_runs(two_heads.first, "loss") == []
    assert "coincide" not in loss_curves(two_heads.first).layout.title.subtitle.text


def test_curves_squashed_by_a_far_larger_one_are_not_called_equal():
    # random_normal(σ=10)'s loss is ~100× the others: on a linear axis they all look flat, but they differ
    rep = train_experiment(get_lesson("initializers").experiment.with_(epochs=3), seeds=1)
    groups = coinciding_runs(rep.first, "loss")
    assert all(2 not in g for g in groups)  # the huge one coincides with nothing
    assert [0, 3] not in groups and [0, 1, 3] not in groups  # glorot vs zeros + ReLU hidden (0.69): different


def test_seed_band_chart_draws_a_band_and_a_mean_line_per_head(one_unit):
    fig = seed_band_curves(one_unit)
    bands = [t for t in fig.data if t.fill == "toself"]
    lines = [t for t in fig.data if t.fill != "toself"]
    assert len(bands) == len(lines) == 2
    assert "mean of seeds 0–2" in fig.layout.title.subtitle.text
    assert "coincide" not in fig.layout.title.subtitle.text  # 50% vs ~85%
    loss_note = seed_band_curves(one_unit, "val_loss").layout.title.subtitle.text.replace("<br>", " ")
    assert "1. sigmoid×1 + BCE and 2. softmax×1 + BCE coincide in every seed" in loss_note
    x, mean, lo, hi = one_unit.curve(0, "val_accuracy")
    assert np.allclose(lines[0].y, mean) and np.allclose(bands[0].y, list(hi) + list(lo[::-1]))


def test_the_note_names_which_curves_coincide_when_not_all_do(one_unit):
    import dataclasses

    sweep = one_unit.first
    moved = dataclasses.replace(sweep.runs[1], history=dict(sweep.runs[1].history,
                                                            val_loss=[v * 1.1 for v in sweep.runs[1].history["val_loss"]]))
    changed = dataclasses.replace(sweep, runs=[sweep.runs[0], moved])
    assert coinciding_runs(changed, "loss") == [[0, 1]] and coinciding_runs(changed, "val_loss") == []
    note = loss_curves(changed).layout.title.subtitle.text.replace("<br>", " ")
    assert "softmax×1 + BCE coincide (train loss): one line hides the other" in note
