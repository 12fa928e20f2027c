"""'Repeat over N seeds' on the pages (AppTest): a lesson and an experiment trained over 3 seeds show the
spread table, the band charts and, on the lesson, whether this run bore the finding out."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from lib.lessons import get_lesson

TIMEOUT = 240


def _page(page: str, query: dict) -> AppTest:
    at = AppTest.from_file(f"../{page}", default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at.run()


def test_a_lesson_runs_over_three_seeds_and_says_the_finding_held():
    at = _page("pages/lessons.py", {"lesson": "softmax-one-unit"})
    assert not at.exception
    picker = at.button_group(key="lesson-seeds-softmax-one-unit")
    assert picker.value == get_lesson("softmax-one-unit").experiment.seeds == 3  # the lesson's own default
    at.button(key="run-lesson").click().run()
    assert not at.exception, at.exception
    assert [s.seed for s in at.session_state["lesson_seeds"].sweeps] == [0, 1, 2]
    assert any("This run (seeds 0–2) bears the finding out" in c.value for c in at.caption)
    assert any(h.value.startswith("Over 3 seeds (0–2)") for h in at.subheader)
    table = at.table[0].value
    assert list(table["accuracy"])[1] == "50.0% ± 0.0 pt (50.0%–50.0%)"  # softmax×1: the share of shirts, every seed
    assert len(at.get("plotly_chart")) >= 5  # the three result charts and two band charts


def test_the_experiment_page_repeats_over_the_chosen_seeds():
    from lib.experiment import Experiment

    exp = Experiment(dataset="shirts", epochs=2)
    at = _page("pages/experiment.py", {k: v for k, v in exp.to_query().items()})
    assert not at.exception
    at.button_group(key="x_seeds").set_value(3).run()
    at.button(key="train").click().run()
    assert not at.exception, at.exception
    rep = at.session_state["sweep_seeds"]
    assert rep.seeds == (0, 1, 2) and at.session_state["sweep_exp"].seeds == 3
    assert any(h.value.startswith("Over 3 seeds") for h in at.subheader)
    cell = list(at.table[0].value["accuracy"])[0]
    assert "±" in cell and "–" in cell
