"""What users and links supply is shown as text, only to its own session, and is safe in a spreadsheet.

(Issue 9's findings 4, 5, 8 and 9: a shared result showed another session's class names; links
injected Markdown images and links into notices; a head name became a spreadsheet formula.)
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd
import pytest
from conftest import rendered
from streamlit.testing.v1 import AppTest

from lib.common.text import clean_name, md_escape, md_message
from lib.data.taskdata import TaskData
from lib.heads.config import HeadConfig, default_head
from lib.report.results import history_rows, spreadsheet_safe
from lib.serve import sweep_cache

TIMEOUT = 240
HOSTILE = [
    "![t](http://127.0.0.1:9/task.png)",
    "[Session expired - log in](http://127.0.0.1:9/login)",
    "**bold** _it_ `code` <b>html</b> <img src=x onerror=alert(1)>",
    "$x^2$ :red[red] :material/warning: :material_warning: :smile:",
    "# heading",
    "1. one\n- two",
    "> quote | a | b |",
    "http://127.0.0.1:9/autolink www.example.com mail@example.com",
    "a\\b &amp; &lt;",
]
@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_shows_the_text_itself_and_no_markup(text):
    html, seen = rendered(md_escape(text))
    assert html.startswith("<p>") and html.count("<") == 2, html  # one paragraph and nothing else
    assert seen.replace("\u2060", "") == clean_name(text)  # the same characters, on one line
    # Streamlit turns :name: into an icon or emoji even with escaped colons, and GitHub-flavoured Markdown
    # makes bare addresses links: none of those patterns may survive
    assert not re.search(r":[\w/]+:|://|www\.|@\w", seen, re.IGNORECASE), seen


def test_md_message_keeps_our_code_spans_and_escapes_the_rest():
    html, _ = rendered(md_message("Zip it with `zip -r d.zip f`; the name ![x](http://e/x.png) is bad."))
    assert "<code>zip -r d.zip f</code>" in html and "<img" not in html and "<a" not in html


def test_names_lose_newlines_and_direction_overrides():
    assert clean_name("cat\n- dog\u202e tac\u2066x\u2069\t ") == "cat - dog tacx"
    head = HeadConfig(task="binary", name="mine\u202e\nsecond line")
    assert head.name == "mine second line" and head.label() == "mine second line"
    assert HeadConfig.from_url(head.to_url()) == head


def test_csv_export_cells_never_start_a_formula(toy, tiny_backbone):
    from lib.train.trainer import train

    evil = '=HYPERLINK("http://127.0.0.1:9","Click")'
    assert spreadsheet_safe(evil) == "'" + evil and spreadsheet_safe("sigmoid + BCE") == "sigmoid + BCE"
    for start in "=+-@\t\r":
        assert spreadsheet_safe(start + "x").startswith("'")
    sweep = train([default_head("binary", name=evil), default_head("binary", name="-1+1")], toy("binary"),
                  epochs=1, seed=0, loaded=tiny_backbone)
    text = pd.DataFrame(history_rows(sweep)).to_csv(index=False)
    assert {row["label"] for row in csv.DictReader(io.StringIO(text))} == {"'" + evil, "'-1+1"}
    assert sweep.runs[0].label == evil  # the result itself keeps the name the user gave


def _upload(names: tuple[str, str], dataset: str) -> TaskData:
    """Two sessions' uploads: the same pixels and split, different class (and data set) names."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(40) % 2).astype(np.int32)
    images[y == 1, :16] = 250
    return TaskData(dataset, "binary", images, y, np.arange(40) % 4 == 0, names)


def test_keys_separate_names_and_owners_but_not_head_names():
    alice, bob = _upload(("alice_cat", "alice_dog"), "pets"), _upload(("bob_x", "bob_y"), "pets")
    assert alice.fingerprint == bob.fingerprint  # the same numbers: only names tell them apart
    heads = (default_head("binary"),)

    def key(data, h=heads, owner=""):
        return sweep_cache.sweep_key(h, data, "mobilenet_v2", 64, "imagenet", 2, 0, owner=owner)

    assert key(alice) != key(bob)
    assert key(alice, owner="a" * 32) != key(alice, owner="b" * 32)
    assert key(alice, (default_head("binary", name="mine"),)) == key(alice)


def _experiment_with_upload(data: TaskData, session: str) -> AppTest:
    at = AppTest.from_file("../pages/experiment.py", default_timeout=TIMEOUT)
    at.query_params.update({"task": "binary", "epochs": "2", "size": "64", "seed": "777"})
    at.session_state["user_data"] = {"binary": data}
    at.session_state["session_id"] = session
    at.run()
    return at.selectbox(key="x_dataset").select(f"upload: {data.dataset}").run()


def test_a_session_never_sees_another_sessions_upload_names():
    first = _experiment_with_upload(_upload(("alice_cat", "alice_dog"), "![a](http://127.0.0.1:9/a.png)"), "a" * 32)
    first.button(key="train").click().run()
    second = _experiment_with_upload(_upload(("bob_x", "bob_y"), "bob pets"), "b" * 32)
    second.button(key="train").click().run()
    assert not first.exception and not second.exception
    sweep = second.session_state["sweep"]
    assert sweep.label_names == ("bob_x", "bob_y") and sweep.dataset == "bob pets"
    shown = " ".join(e.value for kind in ("markdown", "caption", "success", "info") for e in second.get(kind))
    assert "alice" not in shown and "bob pets" in shown
    assert not any("Someone ran exactly this sweep before" in s.value for s in second.success)
    captions = " ".join(c.value for c in first.caption)
    assert "![a]" not in captions and md_escape("![a](http://127.0.0.1:9/a.png)") in captions


def test_link_values_and_head_names_reach_the_page_as_text():
    evil = "![t](http://127.0.0.1:9/t.png)"
    named = default_head("binary", name="[Session expired - log in](http://127.0.0.1:9/login)").to_url()
    at = AppTest.from_file("../pages/experiment.py", default_timeout=TIMEOUT)
    at.query_params.update({"task": evil, "ds": evil, "epochs": evil, "bb": "[Log in](http://127.0.0.1:9)",
                            "size": "64", "h": [named, "activation=" + evil]})
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert len(warnings) >= 4
    for w in warnings:
        html, _ = rendered(w)
        assert "<img" not in html and "<a " not in html, w
    at.button(key="train").click().run()
    names = [m.value for m in at.markdown if "Session expired" in m.value]
    assert names and all("<a " not in rendered(m)[0] for m in names), names
    for view in ("What the loss saw", "Images"):  # the views that name every head again
        at.segmented_control(key="exp-view").set_value(view).run()
        assert not at.exception
        shown = [e.label for e in at.expander] + [m.value for m in (*at.markdown, *at.caption)]
        named_here = [t for t in shown if "Session expired" in t]
        assert named_here and all("<a " not in rendered(t)[0] for t in named_here), (view, named_here)

    lessons = AppTest.from_file("../pages/lessons.py", default_timeout=TIMEOUT)
    lessons.query_params["lesson"] = evil
    lessons.run()
    assert not lessons.exception
    assert all("<img" not in rendered(w.value)[0] for w in lessons.warning) and lessons.warning
