"""lib/workshop.py: room subjects, the questions they ask, the measured reveal and the vote chart.

The sweeps here are stand-ins holding only what the workshop reads (each head's final metrics and
label), so the rules are checked exactly and without training; tests/test_room_pages.py reveals real runs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lib.classroom.store import open_store
from lib.experiment import Experiment
from lib.heads.config import default_head
from lib.lessons import LESSONS
from lib.train.seeds import SeedSweeps
from lib.workshop import (
    TIE_CHOICE,
    WorkshopError,
    app_address,
    best_heads,
    experiment_for,
    experiment_question,
    experiment_subject,
    join_link,
    lesson_subject,
    link_is_local,
    measured_note,
    next_subject,
    question_for,
    reveal,
    rounds_summary,
    teacher_link,
    title_for,
    vote_figure,
)

TWO = Experiment(dataset="shirts", epochs=3, seeds=3, heads=(
    default_head("binary"), default_head("binary", activation="softmax", units=2, loss="sparse_categorical_crossentropy")))


def sweeps(task: str, *per_seed: list[float | None], key: str = "val_accuracy") -> SeedSweeps:
    """One stand-in sweep per seed; each list holds every head's final `key` (None: the head has none)."""
    def sweep(seed: int, values: list[float | None]):
        runs = [SimpleNamespace(label=f"head {i + 1}", final={} if v is None else {key: v}) for i, v in enumerate(values)]
        return SimpleNamespace(task=task, seed=seed, unit="px" if task == "regression" else "", runs=runs)
    return SeedSweeps(tuple(sweep(s, v) for s, v in enumerate(per_seed)))


def test_subjects_round_trip():
    assert experiment_for(lesson_subject(LESSONS[0].id)) == LESSONS[0].experiment
    assert question_for(lesson_subject(LESSONS[0].id)) is LESSONS[0].quiz
    assert experiment_for(experiment_subject(TWO)) == TWO
    assert title_for(experiment_subject(TWO)).startswith("An experiment: 2 heads on shirts (binary")
    with pytest.raises(WorkshopError, match="add a second head"):
        experiment_subject(TWO.with_(heads=TWO.heads[:1]))
    with pytest.raises(WorkshopError):
        question_for("lesson:no-such-lesson")
    with pytest.raises(WorkshopError):
        question_for("garbage")


def test_next_lesson_walks_the_lessons_and_an_experiment_goes_to_the_first():
    ids = [lesson.id for lesson in LESSONS]
    assert [next_subject(lesson_subject(i)) for i in ids] == [lesson_subject(i) for i in ids[1:]] + [None]
    assert next_subject(experiment_subject(TWO)) == lesson_subject(ids[0])


def test_an_experiments_question_is_measured_on_the_run():
    q = experiment_question(TWO)
    assert q.prompt == "Which head will end with the best validation accuracy?"
    assert [c.text for c in q.choices] == ["sigmoid + BCE", "softmax×2 + sparse CCE", TIE_CHOICE]
    assert not any(c.correct for c in q.choices)  # only the run knows
    assert q.measured(sweeps("binary", [0.80, 0.82], [0.79, 0.81])) == 1  # the mean over seeds decides
    assert q.measured(sweeps("binary", [0.80, 0.80])) == 2  # the same number of images right: a tie
    assert q.measured(sweeps("binary", [0.80, None])) == 0  # a head without a result cannot win
    assert q.measured(sweeps("binary", [None, None])) is None  # nothing measured: nothing to reveal
    mae = experiment_question(Experiment(task="regression", dataset="shapes", heads=(
        default_head("regression"), default_head("regression", activation="relu"))))
    assert mae.prompt == "Which head will end with the lowest validation MAE?"
    assert mae.measured(sweeps("regression", [115.0, 620.0], key="val_mae")) == 0
    assert best_heads(sweeps("regression", [115.0, 115.0 * (1 + 1e-9)], key="val_mae")) == [0, 1]


def test_the_note_says_what_was_measured_and_when_the_run_does_not_decide():
    q = experiment_question(TWO)
    note = measured_note(q, sweeps("binary", [0.80, 0.82], [0.79, 0.81]))
    assert note == ("Measured validation accuracy (the mean over seeds 0–1): 1. head 1 79.5%, 2. head 2 81.5% — "
                    "the run bears out B.")
    assert "\n" not in note
    assert measured_note(q, sweeps("binary", [None, None])).endswith("none of the choices: it does not decide.")
    assert "115 px" in measured_note(experiment_question(Experiment(task="regression", dataset="shapes", heads=(
        default_head("regression"), default_head("regression", activation="relu")))),
        sweeps("regression", [115.0, 620.0], key="val_mae"))


def test_reveal_stores_the_measured_choice_and_its_note():
    store = open_store()
    subject = experiment_subject(TWO)
    room, secret = store.create_room(subject, len(question_for(subject).choices))
    result = sweeps("binary", [0.70, 0.90])
    revealed = reveal(store, room.code, secret, result)
    assert (revealed.state, revealed.answer) == ("revealed", 1)
    assert revealed.answer_note == measured_note(question_for(subject), result)


def test_the_vote_chart_marks_nothing_until_the_reveal():
    before = json.loads(vote_figure(3, {1: [4, 0, 2]}).to_json())
    assert [t["x"] for t in before["data"]] == [[4, 0, 2]] and before["data"][0]["y"] == ["A", "B", "C"]
    assert "measured" not in json.dumps(before) and "marker" in before["data"][0]
    assert isinstance(before["data"][0]["marker"]["color"], str)  # one colour for every bar
    after = json.loads(vote_figure(3, {1: [4, 0, 2], 2: [1, 0, 5]}, answer=2).to_json())
    assert [t["name"] for t in after["data"]] == ["round 1", "round 2"]
    assert after["data"][0]["y"] == ["A", "B", "C ✓ measured"]
    assert rounds_summary({1: [4, 0, 2], 2: [1, 0, 5]}, 2) == (
        "Round 1: 2 of 6 votes (33%) on the measured answer · Round 2: 5 of 6 votes (83%) on the measured answer")
    assert rounds_summary({1: [0, 0, 0]}, 1) == "Round 1: no votes"
    assert rounds_summary({1: [1, 2, 3]}, None).startswith("The run did not decide")


def test_links():
    assert app_address("http://10.0.0.5:8501/room") == "http://10.0.0.5:8501"  # st.context.url on the Room page
    assert app_address("https://lab.example.org/headlab/lessons/") == "https://lab.example.org/headlab"
    assert app_address("http://10.0.0.5:8501/") == "http://10.0.0.5:8501"
    assert join_link("http://10.0.0.5:8501/", "ABC234") == "http://10.0.0.5:8501/room?code=ABC234"
    assert teacher_link("https://lab.example.org", "ABC234", "s3/cr+t") == \
        "https://lab.example.org/room?code=ABC234&teacher=s3%2Fcr%2Bt"
    assert link_is_local("http://localhost:8501/room?code=ABC234") and link_is_local("http://127.0.0.1:8611/room")
    assert not link_is_local("http://10.0.0.5:8501/room?code=ABC234")
