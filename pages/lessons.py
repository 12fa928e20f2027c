"""Lessons: guided workshop scenarios — a question, preset heads, what to look for, one click to run."""

from __future__ import annotations

import streamlit as st

from lib.common.text import md_escape
from lib.data.samples import load_sample
from lib.heads.naming import distinct_labels
from lib.heads.pairings import verdict_for
from lib.lessons import LESSONS, SHOWS_EPOCH_TIMES, epoch_time_text, get_lesson
from lib.workshop import lesson_subject
from ui.components import (
    ensure_app_navigation,
    keep_keras_state,
    projector_css,
    render_results,
    verdict_badge,
)
from ui.room import teach_button
from ui.seeds import render_seed_spread, seeds_picker, train_seeds_with_progress

ensure_app_navigation()
keep_keras_state()  # app.py does this for the server; here for pages run alone (tests)
ss = st.session_state
projector_css()
st.title("Lessons")
st.caption("Each lesson asks one question about the head, runs a few configurations side by side on the bundled "
           "data, and tells you what to look for. The 'what we measured' box was checked against a real run.")

ids = [lesson.id for lesson in LESSONS]
requested = st.query_params.get("lesson") or ss.get("lesson") or ids[0]
if requested not in ids:
    st.warning(f"There is no lesson called '{md_escape(requested[:40])}'; showing the first one.")
    requested = ids[0]
ss.setdefault("lesson_pick", requested)
if ss.get("lesson") and ss["lesson"] != ss["lesson_pick"] and ss["lesson"] in ids:
    ss["lesson_pick"] = ss["lesson"]
lesson_id = st.selectbox("Lesson", ids, key="lesson_pick",
                         format_func=lambda i: f"{ids.index(i) + 1}. {get_lesson(i).title}")
ss["lesson"] = lesson_id
st.query_params["lesson"] = lesson_id
lesson = get_lesson(lesson_id)
exp = lesson.experiment

st.subheader(lesson.question)
if getattr(lesson, "article", ""):  # a seed article's own code: which, and what this server had to change
    st.caption(f"From the seed article: {md_escape(lesson.article)}")
if getattr(lesson, "substitution", ""):
    st.info(md_escape(lesson.substitution), icon=":material/swap_horiz:")
st.markdown(f"**Look for:** {lesson.look_for}")
n_outputs = load_sample(exp.dataset, exp.task).n_outputs
cols = st.columns(len(exp.heads))
for i, (col, head, name) in enumerate(zip(cols, exp.heads, distinct_labels(exp.heads))):
    with col.container(border=True):
        st.markdown(f"**{i + 1}. {md_escape(name)}**")
        st.caption(f"{exp.task} · {exp.dataset} · {head.pooling} pooling · lr {head.learning_rate:g}"
                   + (f" · {head.unfrozen} layers unfrozen" if head.unfrozen and not head.two_phase else "")
                   + (f" · frozen, then {head.unfrozen} layers unfrozen for {head.fine_tune_epochs} epochs at lr "
                      f"{head.fine_tune_learning_rate:g}" if head.two_phase else ""))
        verdict_badge(verdict_for(head, n_outputs))

row = st.container(horizontal=True)
n_seeds = seeds_picker(row, f"lesson-seeds-{lesson_id}", exp.seeds)  # repeat over N seeds
run = row.button("Run it", type="primary", icon=":material/play_arrow:", key="run-lesson")
if row.button("Open in Experiment", icon=":material/tune:"):
    ss["pending_exp"] = exp.with_(seeds=n_seeds)
    st.switch_page("pages/experiment.py")
position = ids.index(lesson_id)
if position + 1 < len(ids):
    def _next_lesson() -> None:
        ss["lesson"] = ids[position + 1]

    row.button(f"Next lesson: {get_lesson(ids[position + 1]).title}", icon=":material/arrow_forward:",
               key="next-lesson", on_click=_next_lesson)
teach_button(row, lesson_subject(lesson_id))

if run:
    rep = train_seeds_with_progress(exp.with_(seeds=n_seeds), key="lesson")
    if rep is not None:
        ss["lesson_sweep"], ss["lesson_seeds"] = (lesson_id, rep.first), rep

if ss.get("lesson_sweep", (None,))[0] == lesson_id:
    st.success(f"**What we measured:** {lesson.finding.removeprefix('Measured: ')}", icon=":material/lab_research:")
    if lesson_id in SHOWS_EPOCH_TIMES:  # the finding is about time: show what this run measured
        st.caption(md_escape(epoch_time_text(ss["lesson_sweep"][1])))
    rep = ss["lesson_seeds"]
    missed = lesson.verify(rep)  # the finding re-tested on this very run, against its seeds' spread
    seeds = f"seed {rep.seeds[0]}" if len(rep.seeds) == 1 else f"seeds {rep.seeds[0]}–{rep.seeds[-1]}"
    if missed:
        st.warning(f"In this run ({seeds}) part of the finding did not hold: " + "; ".join(md_escape(m) for m in missed))
    else:
        st.caption(f"This run ({seeds}) bears the finding out.")
    render_results(ss["lesson_sweep"][1], key="lesson")
    render_seed_spread(rep, key="lesson")
