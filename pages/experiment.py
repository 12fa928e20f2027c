"""Experiment: choose data and backbone, define up to six heads side by side, train, compare."""

from __future__ import annotations

import uuid

import streamlit as st

from lib.backbones.registry import REGISTRY
from lib.common.errors import HeadLabError
from lib.common.text import md_message
from lib.data.taskdata import TASKS
from lib.data.uploads import UPLOAD_PREFIX
from lib.experiment import MAX_EPOCHS, MAX_HEADS, Experiment, default_experiment, from_query
from lib.heads.config import default_head
from lib.heads.pairings import verdict_for
from ui.components import (
    clear_head_keys,
    dataset_options,
    ensure_app_navigation,
    head_editor,
    keep_keras_state,
    projector_css,
    projector_on,
    render_results,
    task_data,
    verdict_badge,
)
from ui.room import share_button, teach_button
from ui.seeds import render_seed_spread, seeds_picker, train_seeds_with_progress

ensure_app_navigation()
keep_keras_state()  # app.py does this for the server; here for pages run alone (tests)
ss = st.session_state
projector_css()
st.title("Experiment")


def _new_id() -> str:
    return uuid.uuid4().hex[:8]


def _load(exp: Experiment) -> None:
    """Make `exp` the page's experiment: fresh widget state for every head."""
    for hid in ss.get("head_ids", []):
        clear_head_keys(f"h{hid}-")
    for key in ("x_task", "x_dataset", "x_backbone", "x_size", "x_epochs", "x_seed", "x_seeds"):
        ss.pop(key, None)
    ss["exp"] = exp
    ss["head_ids"] = [_new_id() for _ in exp.heads]


UPLOAD_LINK = "upload"  # the link's ds= of an experiment on an upload (which stays in its own session)

if "exp" not in ss or ss.pop("load_from_url", False):
    params = {k: st.query_params.get_all(k) if k == "h" else st.query_params.get(k) for k in st.query_params}
    from_upload = params.get("ds") == UPLOAD_LINK
    if from_upload:
        params.pop("ds")
    exp, notices = from_query(params)
    if from_upload:  # said, not silently swapped: the heads are the link's, the data is not
        notices.insert(0, "This link was made on someone's uploaded data, which stays private to their session: "
                          f"it opens with the sample dataset '{exp.dataset}' instead. To use your own images, "
                          "upload them on the Data page.")
    _load(exp)
    ss["notices"] = notices
if "pending_exp" in ss:  # set by the Lessons page's "open in Experiment"
    _load(ss.pop("pending_exp"))
for notice in ss.get("notices", []):
    st.warning(md_message(notice), icon=":material/link_off:")  # notices quote the link

exp: Experiment = ss["exp"]


def _on_task_change() -> None:
    _load(default_experiment(ss["x_task"]).with_(backbone=ss["exp"].backbone, input_size=ss["exp"].input_size,
                                                  epochs=ss["exp"].epochs, seed=ss["exp"].seed))
    ss["x_task"] = ss["exp"].task


with st.container(border=True):
    if projector_on():  # larger text: two rows of three, or "binary" shows as "bi" and Input px as nothing
        c = st.columns([1, 1.2, 2.2]) + st.columns(3)
    else:  # the backbone title needs the room ("MobileNetV2 (ImageNet, bundled)")
        c = st.columns([1, 1.2, 2.2, 0.8, 0.8, 0.8])
    ss.setdefault("x_task", exp.task)
    c[0].selectbox("Task", TASKS, key="x_task", on_change=_on_task_change)
    options = dataset_options(exp.task)
    ss.setdefault("x_dataset", exp.dataset if exp.dataset in options else options[0])
    dataset = c[1].selectbox("Dataset", options, key="x_dataset")
    ss.setdefault("x_backbone", exp.backbone)
    backbone = c[2].selectbox("Backbone", list(REGISTRY), key="x_backbone", format_func=lambda n: REGISTRY[n].title)
    sizes = REGISTRY[backbone].sizes()
    if ss.get("x_size") not in sizes:
        ss["x_size"] = exp.input_size if exp.input_size in sizes else sizes[0]
    size = c[3].selectbox("Input px", sizes, key="x_size")
    ss.setdefault("x_epochs", exp.epochs)
    epochs = c[4].number_input("Epochs", 1, MAX_EPOCHS, key="x_epochs")
    ss.setdefault("x_seed", exp.seed)
    seed = c[5].number_input("Seed", 0, 2**31 - 1, key="x_seed")

try:
    data = task_data(dataset, exp.task)
except HeadLabError as e:
    st.error(md_message(e))
    st.stop()
n_outputs = data.n_outputs

from lib.backbones.registry import is_random, status_advice, weights_status  # noqa: E402  (imports Keras: after the first paint)

w_status = weights_status(backbone, size)
if is_random(w_status):  # said before Train: extracting features from a random backbone can take a minute
    st.warning(f"**{REGISTRY[backbone].title} at {size} px has random weights on this server** ({w_status}): "
               "its features are random, so this compares heads on random features, not transfer learning. "
               f"{status_advice(w_status, backbone)} MobileNetV2 (bundled) has ImageNet weights.",
               icon=":material/warning:")
st.caption(f"Weights: **{w_status}** · Data: {len(data.images)} images, "
           f"{int(data.is_val.sum())} for validation · {n_outputs} output(s) natural for this task")

# ---- heads side by side --------------------------------------------------------------------------
head_ids: list[str] = ss["head_ids"]
heads = list(exp.heads)
# Rows of at most three: six heads in one row left each editor ~130 px wide at 1280 px (labels broken
# mid-word, dropdowns cut to "sigmoi"); three keep every widget readable, also in projector mode.
PER_ROW = 2 if projector_on() else 3
cols = [col for start in range(0, len(heads), PER_ROW)
        for col in st.columns(PER_ROW)[:min(PER_ROW, len(heads) - start)]]
edited = []
for i, (col, hid, head) in enumerate(zip(cols, head_ids, heads)):
    with col.container(border=True):
        top = st.container(horizontal=True, vertical_alignment="center")
        top.markdown(f"**Head {i + 1}**", width="stretch")
        if len(heads) > 1 and top.button("", icon=":material/close:", key=f"rm-{hid}", type="tertiary",
                                         help=f"Remove head {i + 1}"):
            clear_head_keys(f"h{hid}-")
            del head_ids[i]
            ss["exp"] = exp.with_(heads=tuple(h for j, h in enumerate(heads) if j != i))
            st.rerun()
        new = head_editor(f"h{hid}-", head, n_outputs)
        verdict_badge(verdict_for(new, n_outputs))
        edited.append(new)

exp = exp.with_(task=exp.task, dataset=dataset, backbone=backbone, input_size=int(size), epochs=int(epochs),
                seed=int(seed), heads=tuple(edited))
ss["exp"] = exp
try:  # the link in the address bar always describes what is on screen
    query = exp.to_query()
    if dataset.startswith(UPLOAD_PREFIX):
        query["ds"] = UPLOAD_LINK  # never the upload's own name; whoever opens the link is told
    st.query_params.from_dict(query)
except Exception:  # a page never breaks over its URL
    pass



def _room_buttons(exp: Experiment) -> None:
    """'Teach this to a room' (its question: which head ends best) and, in a joined room, 'Share my experiment'."""
    from lib.workshop import MIN_HEADS, experiment_subject

    upload = exp.dataset.startswith(UPLOAD_PREFIX)
    row = st.container(horizontal=True)
    if upload:
        teach_button(row, None, "A room's experiment must be on a sample dataset: uploaded images stay in your session.")
    elif len(exp.heads) < MIN_HEADS:
        teach_button(row, None, "Add a second head: the room's question is which head ends best.")
    else:
        teach_button(row, experiment_subject(exp))
    share_button(row, exp, upload)


@st.fragment
def train_and_results() -> None:
    """Train and the results. A fragment: pressing Train (or changing the results view) reruns only
    this part, not the head editors above — a workshop's 30 simultaneous clicks cost the server half as
    much. Any change above is a full rerun, which runs this too, so `ss["exp"]` is always current."""
    exp: Experiment = ss["exp"]
    row = st.container(horizontal=True)
    if row.button("Add head", icon=":material/add:", disabled=len(exp.heads) >= MAX_HEADS):
        ss["head_ids"].append(_new_id())
        ss["exp"] = exp.with_(heads=exp.heads + (exp.heads[-1] if exp.heads else default_head(exp.task),))
        st.rerun()  # the whole page: a new editor column
    if row.button("Reset", icon=":material/restart_alt:"):
        _load(default_experiment(exp.task))
        st.rerun()
    exp = ss["exp"] = exp.with_(seeds=seeds_picker(row, "x_seeds", exp.seeds))  # repeat over N seeds
    train_clicked = row.button("Train", type="primary", icon=":material/play_arrow:", key="train")
    _room_buttons(exp)

    if train_clicked:
        rep = train_seeds_with_progress(exp, key="exp")
        if rep is not None:
            ss["sweep"], ss["sweep_exp"], ss["sweep_seeds"] = rep.first, exp, rep

    if "sweep" in ss:
        if ss.get("sweep_exp") != exp:
            st.info("These results are from the settings before your last change; press Train to update them.")
        st.divider()
        st.header("Results")
        render_results(ss["sweep"], key="exp")
        if "sweep_seeds" in ss:
            render_seed_spread(ss["sweep_seeds"], key="exp")


train_and_results()
