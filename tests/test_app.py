"""Page tests with Streamlit's AppTest: widgets, verdict badges, a real training run, links."""

from __future__ import annotations

import re

import pytest
from conftest import visible
from streamlit.testing.v1 import AppTest

from lib.heads.config import default_head
from lib.heads.pairings import verdict_for

TIMEOUT = 240


def app() -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    return at


def open_page(page: str, query: dict | None = None) -> AppTest:
    """Run one page file on its own (app.py's routing is exercised by the real-browser test)."""
    at = AppTest.from_file(f"../{page}", default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    return at.run()


def badges(at: AppTest) -> list[str]:
    """The verdict badges on the page, in order (st.badge renders as ':color-badge[icon text]' markdown)."""
    found = re.findall(r":\w+-badge\[(?::material/\w+: )?([^\]]+)\]", " ".join(m.value for m in at.markdown))
    return found


def test_home_shows_the_weight_status_and_the_way_in():
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Head Lab"
    table = at.table[0].value
    assert "imagenet (bundled)" in set(table["weights"])
    # the suite's Keras cache is empty: the others are random here, said so, with the command filled in
    assert "imagenet (will download)" not in set(table["weights"])
    resnet = table[table["backbone"] == "ResNet50"].iloc[0]
    assert resnet["weights"].startswith("random") and "python -m lib weights fetch resnet50" in resnet["what to do"]
    assert "`" not in "".join(table["what to do"]) and "NAME" not in "".join(table["what to do"])
    assert any(b.label.startswith("Start here") for b in at.button)


def test_experiment_page_has_its_widgets_and_table_driven_badges():
    at = open_page("pages/experiment.py", {"task": "binary", "epochs": "2"})
    assert not at.exception
    for label in ("Task", "Dataset", "Backbone", "Input px"):
        assert any(s.label == label for s in at.selectbox), label
    assert badges(at) == ["OK"]  # the textbook sigmoid head
    assert any(visible(c.value).endswith("On JAX: the same (every sentence above was measured on TensorFlow and JAX).")
               for c in at.caption)
    # make it softmax over one unit: the badge must follow the pairing table
    prefix = next(k for k in at.session_state if isinstance(k, str) and k.endswith("activation"))[:-len("activation")]
    at.checkbox(key=f"{prefix}auto_units").uncheck()
    at.selectbox(key=f"{prefix}activation").select("softmax").run()
    head = default_head("binary", activation="softmax", units=1)
    assert verdict_for(head, 1).level == "error"
    assert badges(at) == ["Mismatch"]
    assert "always outputs 1.0 (to float precision)" in " ".join(c.value for c in at.caption)
    # beside it, the backend column: what the same head does on JAX, from the measured table
    jax = [visible(c.value) for c in at.caption if "On JAX" in c.value]
    assert len(jax) == 1 and "On JAX this head would differ:" in jax[0] and "the loss cannot move" in jax[0]
    assert "loss still falls" not in jax[0]


def test_training_from_the_experiment_page_shows_results():
    h1 = default_head("binary").to_url()
    h2 = default_head("binary", activation="softmax", units=1).to_url()
    at = open_page("pages/experiment.py", {"task": "binary", "epochs": "3", "size": "64", "h": [h1, h2]})
    assert badges(at) == ["OK", "Mismatch"]
    at.button(key="train").click().run()
    assert not at.exception
    assert any(h.value == "Results" for h in at.header), [e.value for e in at.error]
    text = " ".join(visible(e.value) for e in at.error)
    assert "Every prediction is 1, the same for every image" in text
    assert len(at.get("plotly_chart")) == 3  # loss, metric, gradient: only the chosen view is built
    # each head's card has its Keras code (it was hidden under Export)
    assert [e.label for e in at.expander].count("Show Keras code") == 2
    assert sum("keras" in c.value and "Dense(" in c.value for c in at.code) == 2
    at.segmented_control(key="exp-view").set_value("Outputs before / after").run()
    assert len(at.get("plotly_chart")) == 2 * 2  # outputs before/after and per-sample sums, per head
    assert at.session_state["sweep"].epochs == 3


def test_a_train_over_budget_is_refused_without_waiting_in_the_queue(monkeypatch):
    """While every training slot is taken, a Train the budget refuses says so at once: it does not wait
    its turn first (a hostile link once held its place in line for 34 s to be refused)."""
    import threading

    from lib.serve.gate import gate

    monkeypatch.setenv("HEADLAB_MAX_PARAMS", "1000")  # the default head on MobileNetV2 has 1,281
    at = open_page("pages/experiment.py", {"task": "binary", "epochs": "3", "size": "64",
                                           "h": [default_head("binary").to_url()]})
    held, release = threading.Barrier(gate().slots + 1), threading.Event()

    def hold() -> None:
        with gate().slot():
            held.wait()
            release.wait(120)

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(gate().slots)]
    for t in holders:
        t.start()
    held.wait(30)  # every slot is taken
    try:
        at.button(key="train").click().run(timeout=60)  # queued, it would wait until the slots are free
        errors = " ".join(visible(e.value) for e in at.error)
        assert "Head 1 (sigmoid + BCE) has 1,281 parameters; this server allows 1,000" in errors, errors
        assert "HEADLAB_MAX_PARAMS" in errors
    finally:
        release.set()
        for t in holders:
            t.join(10)


def test_a_second_session_running_the_same_sweep_gets_it_without_training():
    query = {"task": "binary", "epochs": "2", "size": "64", "seed": "4242"}
    first = open_page("pages/experiment.py", query)
    first.button(key="train").click().run()
    second = open_page("pages/experiment.py", query)
    second.button(key="train").click().run()
    assert not second.exception
    messages = [s.value for s in second.success]
    assert any("Someone ran exactly this sweep before" in m for m in messages), messages
    a, b = first.session_state["sweep"], second.session_state["sweep"]
    assert a.runs[0].history == b.runs[0].history


def test_link_round_trip_and_bad_links_give_notices():
    h = default_head("multiclass", activation="sigmoid", loss="categorical_crossentropy").to_url()
    at = open_page("pages/experiment.py", {"task": "multiclass", "ds": "shapes", "epochs": "7", "seed": "9", "h": [h]})
    assert not at.exception and not at.warning
    exp = at.session_state["exp"]
    assert (exp.task, exp.dataset, exp.epochs, exp.seed) == ("multiclass", "shapes", 7, 9)
    assert exp.heads[0].activation == "sigmoid" and badges(at) == ["Warning"]
    assert at.query_params["h"] == h and at.query_params["epochs"] == "7"

    at = open_page("pages/experiment.py", {"task": "nonsense", "epochs": "99999999", "h": ["garbage"]})
    assert not at.exception
    notices = " ".join(w.value for w in at.warning)
    assert "Unknown task" in notices and "using 200" in notices and "could not be read" in notices
    assert at.session_state["exp"].task == "binary"


def test_a_two_phase_head_survives_the_head_editor():
    """A link to the two-phase head (the fine-tuning lesson's "Open in Experiment") keeps both phases
    through the editor's widgets, and a change in the editor reaches the config."""
    h = default_head("binary", unfrozen=12, fine_tune_epochs=3, fine_tune_learning_rate=2e-5).to_url()
    at = open_page("pages/experiment.py", {"task": "binary", "h": [h]})
    assert not at.exception
    head = at.session_state["exp"].heads[0]
    assert (head.unfrozen, head.fine_tune_epochs, head.fine_tune_learning_rate) == (12, 3, 2e-5)
    key = next(n.key for n in at.number_input if n.key.endswith("-ft_epochs"))  # head ids are random
    at.number_input(key=key).set_value(5).run()
    assert at.session_state["exp"].heads[0].fine_tune_epochs == 5
    assert h not in str(at.query_params["h"])  # the link follows the edit


@pytest.mark.parametrize("lesson", ["softmax-one-unit"])
def test_a_lesson_runs_with_one_click(lesson):
    at = open_page("pages/lessons.py", {"lesson": lesson})
    assert not at.exception
    assert badges(at) == ["OK", "Mismatch"]
    # each head card says what the same head does on JAX (softmax over one unit: its loss cannot move there)
    jax = [visible(c.value) for c in at.caption if "On JAX" in c.value]
    assert len(jax) == 2 and "the same" in jax[0] and "the loss cannot move" in jax[1]
    at.button(key="run-lesson").click().run()
    assert not at.exception
    assert any("What we measured" in s.value for s in at.success), [e.value for e in at.error]
    assert len(at.get("plotly_chart")) >= 3


def test_page_runs_no_longer_clear_keras_session(monkeypatch):
    """Streamlit clears Keras's session after every script run; Head Lab's pages switch that off."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    current = script_runner._clean_problem_modules
    original = getattr(current, "replaced", current)
    monkeypatch.setattr(script_runner, "_clean_problem_modules", original)  # as a fresh server starts
    clears = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: clears.append(1))
    original()
    assert clears == [1]  # Streamlit's own clean-up does clear it: the check below can fail
    clears.clear()
    for page in ("app.py", "pages/experiment.py", "pages/lessons.py"):
        monkeypatch.setattr(script_runner, "_clean_problem_modules", original)
        at = AppTest.from_file(f"../{page}", default_timeout=TIMEOUT).run()
        assert not at.exception, page
        assert clears == [], page


def test_random_weight_backbone_is_announced_before_training_and_on_every_chart():
    """A backbone without ImageNet weights here (the tiny MobileNet at 64 px: Keras has none for that
    size): the page warns before Train, and every chart of the results says the weights were random."""
    import json

    from lib.report.base import RANDOM_WEIGHTS_NOTE

    h1 = default_head("binary").to_url()
    at = open_page("pages/experiment.py", {"task": "binary", "bb": "mobilenet_v2_035", "size": "64", "epochs": "2",
                                           "h": [h1]})
    assert not at.exception
    assert any("has random weights on this server" in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="train").click().run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    for c in charts:
        assert RANDOM_WEIGHTS_NOTE in json.loads(c.proto.spec)["layout"]["title"]["subtitle"]["text"]
    assert any("compare heads on random features" in w.value for w in at.warning)


def test_next_lesson_button_walks_the_lessons_in_order():
    from lib.lessons import LESSONS

    at = open_page("pages/lessons.py", {"lesson": LESSONS[0].id})
    assert not at.exception
    at.button(key="next-lesson").click().run()
    assert at.session_state["lesson"] == LESSONS[1].id
    assert at.selectbox(key="lesson_pick").value == LESSONS[1].id
    at = open_page("pages/lessons.py", {"lesson": LESSONS[-1].id})
    assert not any(b.key == "next-lesson" for b in at.button)  # the last lesson has no next


def test_a_link_made_on_an_upload_says_it_opens_with_a_sample():
    at = open_page("pages/experiment.py", {"task": "binary", "ds": "upload", "epochs": "2"})
    assert not at.exception
    notices = [w.value for w in at.warning]
    assert any("made on someone's uploaded data" in visible(n) and "opens with the sample dataset" in visible(n)
               for n in notices), notices


def test_results_show_what_the_loss_saw_and_the_images_behind_the_numbers():
    h1 = default_head("binary").to_url()
    h2 = default_head("binary", activation="softmax", units=1).to_url()
    at = open_page("pages/experiment.py", {"task": "binary", "epochs": "3", "size": "64", "h": [h1, h2]})
    at.button(key="train").click().run()
    sweep = at.session_state["sweep"]
    softmax = sweep.runs[1]
    # each card counts its confidently wrong predictions: softmax over one unit, every negative image
    wrong = [m for m in at.metric if m.label == "confidently wrong"]
    assert [m.value for m in wrong] == [f"{r.confidently_wrong} of {len(sweep.y_val)} images" for r in sweep.runs]
    assert softmax.confidently_wrong == int((sweep.y_val == 0).sum())

    at.segmented_control(key="exp-view").set_value("What the loss saw").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 1 + 2  # every head on one epoch scrubber, then each head's before/after panels
    import json

    scrub = json.loads(charts[0].proto.spec)
    assert [f["name"] for f in scrub["frames"]] == ["0", "1", "2", "3"]  # every epoch is a frame
    text = " ".join(visible(m.value) for m in at.markdown)
    assert "The loss used the pre-softmax values, not what predict() returns" in text

    at.segmented_control(key="exp-view").set_value("Images").run()
    assert not at.exception
    n_cards = sum(min(6, len(r.top_losses)) for r in sweep.runs)
    assert len(at.get("image")) == n_cards + 1  # the galleries, and the chosen image beside its bars
    captions = " ".join(visible(c.value) for c in at.caption)
    assert "#1 · image" in captions and "1.0 (to float precision) for" in captions  # softmax's worst image
    worst = softmax.top_losses[0][0]
    buttons = [b for b in at.button if b.label == "every head"]
    buttons[6 if len(sweep.runs[0].top_losses) >= 6 else len(sweep.runs[0].top_losses)].click().run()
    assert at.number_input(key="exp-image-input").value == worst  # the softmax gallery's first image, chosen
    same = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert f"Validation image {worst}" in same["layout"]["title"]["text"]


def test_the_images_view_shows_an_uploads_images_and_says_when_they_are_gone():
    from conftest import toy_data

    at = AppTest.from_file("../pages/experiment.py", default_timeout=TIMEOUT)
    at.query_params.update({"task": "binary", "epochs": "2", "size": "64"})
    upload = toy_data("binary", n=40, cache_on_disk=False)  # as an upload: features in memory only
    at.session_state["user_data"] = {"binary": upload}
    at.run()
    at.selectbox(key="x_dataset").set_value("upload: toy").run()
    at.button(key="train").click().run()
    assert not at.exception and at.session_state["sweep"].dataset == "toy"
    at.segmented_control(key="exp-view").set_value("Images").run()
    images = at.get("image")
    n_val = int(upload.is_val.sum())
    assert len(images) == min(6, n_val) + 1  # the head's worst images and the chosen one: the upload's own
    # the upload replaced by other images of the same name: not this run's images, said so, not drawn
    at.session_state["user_data"] = {"binary": toy_data("binary", n=40, seed=9, cache_on_disk=False)}
    at.run()
    assert not at.exception and not at.get("image")
    assert any("not loaded in this session any more" in i.value for i in at.info)
