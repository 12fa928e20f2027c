"""Every lesson's stated finding holds on a real run of its preset experiment (bundled data and backbone)."""

import pytest

from lib.data.loader import load_dataset
from lib.heads.pairings import verdict_for
from lib.lessons import LESSONS, get_lesson
from lib.train.diagnostics import annotate
from lib.train.trainer import train


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_lesson_finding_holds(lesson):
    e = lesson.experiment
    data = load_dataset(e.dataset, e.task)
    sweep = annotate(train(e.heads, data, epochs=e.epochs, seed=e.seed, backbone=e.backbone, input_size=e.input_size))
    assert sweep.weights == "imagenet (bundled)"
    assert all(run.status == "ok" for run in sweep.runs), [run.error for run in sweep.runs]
    assert lesson.check(sweep) == []


def test_lessons_cover_the_workshop_topics():
    ids = {lesson.id for lesson in LESSONS}
    assert {"sigmoid-vs-softmax", "softmax-one-unit", "sigmoid-cce", "softmax-multilabel", "from-logits",
            "regression-activations", "initializers", "flatten-vs-gap", "fine-tuning"} <= ids
    for lesson in LESSONS:
        assert lesson.question and lesson.look_for and lesson.finding.startswith("Measured:")
        assert 2 <= len(lesson.experiment.heads) <= 6
        assert all(h.task == lesson.experiment.task for h in lesson.experiment.heads)


def test_a_mismatch_lesson_shows_an_error_badge_before_training():
    heads = get_lesson("softmax-one-unit").experiment.heads
    assert [verdict_for(h, 1).level for h in heads] == ["ok", "error"]


@pytest.mark.parametrize("lesson_id", ["from-logits", "softmax-multilabel"])
def test_lesson_finding_holds_over_its_seeds(lesson_id):
    """The multi-seed path: the finding is worded against the spread and holds for the lesson's own seeds
    (its default repeat, as the page runs it), each seed retraining the heads only."""
    from lib.experiment import train_experiment

    lesson = get_lesson(lesson_id)
    assert lesson.experiment.seeds >= 3
    rep = train_experiment(lesson.experiment)
    assert rep.seeds == tuple(range(lesson.experiment.seed, lesson.experiment.seed + lesson.experiment.seeds))
    assert lesson.verify(rep) == []


def test_a_check_fails_when_its_finding_does_not_hold():
    """The checks can fail: the sigmoid-vs-softmax run does not show softmax×1's coinciding curves."""
    from lib.experiment import train_experiment

    rep = train_experiment(get_lesson("sigmoid-vs-softmax").experiment.with_(epochs=3), seeds=1)
    failures = get_lesson("softmax-one-unit").verify(rep)
    assert any("coinciding" in f for f in failures) and any("1.0" in f for f in failures)
