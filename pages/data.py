"""Data page: browse the sample datasets, or upload your own and check it was read as you meant.

Layout only: what is shown is computed in lib/data/gallery.py (examples, captions, balance, facts)
and lib/data/uploads.py (an upload from bytes to validated TaskData).
"""

from __future__ import annotations

import hashlib

import streamlit as st

from lib.common.errors import DataError
from lib.common.text import md_escape, md_message
from lib.data import gallery, uploads
from lib.data.limits import UploadLimits
from lib.data.samples import dataset_card, list_datasets, load_sample
from lib.data.taskdata import TASKS, TaskData
from ui import sessions
from ui.components import ensure_app_navigation, projector_css

N_EXAMPLES = 24
LIMITS = UploadLimits()
SESSION_ID_KEY = "session_id"  # the same key ui/components.session_id() uses: one id per session
# (sha256 of the bytes, name, task), message, loaded?, notice: so reruns do not reload. Only text: the
# loaded data lives in user_data alone, so dropping or forgetting it there frees it.
RESULT_KEY = "_data_upload_result"

CLASS_FOLDERS_EXAMPLE = """\
pets.zip
└── pets/          (optional)
    ├── cat/       (a class)
    │   ├── 001.jpg
    │   └── 002.jpg
    └── dog/       (a class)
        ├── 001.jpg
        └── old/002.jpg"""

CSV_LAYOUT_EXAMPLE = """\
photos.zip
├── labels.csv
└── images/
    ├── a.jpg
    └── b.jpg"""

CSV_EXAMPLES = {
    "Multilabel, one 0/1 column per label": "filename,cat,dog,car\nimages/a.jpg,1,0,1\nimages/b.jpg,0,1,0\n",
    "Multilabel, one column of ;-separated names (an empty cell means no label)":
        "filename,labels\nimages/a.jpg,cat;car\nimages/b.jpg,dog\nimages/c.jpg,\n",
    "Regression, exactly one numeric column (unit in brackets, optional)":
        "filename,weight (kg)\nimages/a.jpg,4.2\nimages/b.jpg,11.0\n",
}


def session_id() -> str:
    """This browser session's id (created once); its uploads live in a folder of their own."""
    if SESSION_ID_KEY not in st.session_state:
        st.session_state[SESSION_ID_KEY] = uploads.new_session_id()
    if not st.session_state.get("_uploads_pruned"):  # once per session: drop long-abandoned folders
        st.session_state["_uploads_pruned"] = True
        uploads.prune_stale(keep=st.session_state[SESSION_ID_KEY])
    return st.session_state[SESSION_ID_KEY]


def show_examples(data: TaskData) -> None:
    """The balanced grid of upscaled examples, captioned with label and split."""
    indices = gallery.example_indices(data, N_EXAMPLES)
    thumbs, captions = gallery.gallery(data, indices)
    st.caption(gallery.grid_note(data, len(indices)))
    st.image(thumbs, caption=captions, width=gallery.THUMB_SIZE)


def show_balance(data: TaskData) -> None:
    st.plotly_chart(gallery.balance_figure(data), config={"displayModeBar": False})


# ---------------------------------------------------------------- samples


def sample_section() -> None:
    cards = {c["name"]: c for c in list_datasets()}
    left, right = st.columns([4, 5])
    name = left.selectbox(
        "Dataset", list(cards), format_func=lambda n: cards[n]["title"], key="data_dataset",
        persist_state="session",
    )
    card = dataset_card(name)
    task = right.radio(
        "Task", [t for t in TASKS if t in card["tasks"]], key="data_task", horizontal=True,
        persist_state="session", help="Only the tasks this dataset has labels for.",
    )
    try:
        data = load_sample(name, task)
    except DataError as e:
        st.error(str(e))
        return

    st.subheader(card["title"])
    st.markdown(md_escape(card.get("description", "")))
    st.info(f"**What the {task} label means:** {md_escape(card['tasks'][task]['meaning'])}")
    facts, chart = st.columns([1, 1])
    facts.markdown(gallery.facts_markdown(gallery.card_facts(card, task)))
    with chart:
        show_balance(data)
    st.markdown("#### Examples")
    show_examples(data)


# ---------------------------------------------------------------- uploads


def layouts_help() -> None:
    a, b = st.columns(2)
    with a:
        st.markdown("**Binary and multiclass: one folder per class**")
        st.code(CLASS_FOLDERS_EXAMPLE, language=None)
        st.caption(
            "Each class folder is named after its class; images may sit in sub-folders. Classes are "
            "sorted by name: for binary the first is 0 (negative), the second 1 (positive)."
        )
    with b:
        st.markdown("**Multilabel and regression: images + `labels.csv`**")
        st.code(CSV_LAYOUT_EXAMPLE, language=None)
        st.caption(
            "A `filename` column (or `file`, `image`, `path`) with paths relative to the CSV; "
            "comma-, semicolon- or tab-separated. Images without a row are left out."
        )
    with st.expander("labels.csv examples"):
        for title, text in CSV_EXAMPLES.items():
            st.markdown(f"**{title}**")
            st.code(text, language="text")
    st.caption(uploads.limits_text(LIMITS) + " About a quarter of the images are held out for validation.")


def show_loaded(data: TaskData) -> None:
    """Facts, notes, balance and examples of a validated upload."""
    facts, chart = st.columns([1, 1])
    with facts:
        st.markdown(gallery.facts_markdown(gallery.data_facts(data)))
        if data.notes:
            st.markdown("**Notes from loading**\n\n" + "\n".join(f"- {md_escape(n)}" for n in data.notes))
    with chart:
        show_balance(data)
    st.markdown("#### Examples")
    show_examples(data)


def remember(data: TaskData) -> str:
    """Offer the upload to the Experiment page (user_data[task] = TaskData), within the session's
    memory budget; returns what that dropped, for the user ('' if nothing)."""
    stored = st.session_state.setdefault(uploads.SESSION_KEY, {})
    dropped = uploads.keep_upload(stored, data, LIMITS)
    st.session_state[uploads.SESSION_NAME_KEY] = data.dataset
    sessions.free_when_ended(stored)
    return uploads.dropped_message(dropped, LIMITS)


def upload_section() -> None:
    st.markdown(
        "Zip a folder of your own images and choose the task its labels are for. Nothing leaves this "
        "machine: the zip is unpacked, read into this browser session's memory and deleted from disk at "
        "once; closing the tab frees the rest, two minutes later (the time a tab has to reconnect)."
    )
    layouts_help()
    task = st.radio("Task of your labels", TASKS, key="upload_task", horizontal=True, persist_state="session")
    file = st.file_uploader(
        "Your zip", type=["zip"], key="upload_zip", max_upload_size=max(1, LIMITS.max_upload_bytes // 2**20),
        help=f"At most {LIMITS.max_upload_bytes / 2**20:,.0f} MB.",
    )
    stored: dict[str, TaskData] = st.session_state.get(uploads.SESSION_KEY, {})

    if file is None:
        if task in stored:
            data = stored[task]
            st.success(
                f"Your upload **{md_escape(data.dataset)}** is loaded for the {task} task and available on the "
                f"Experiment page as '{md_escape(uploads.experiment_name(data))}'."
            )
            if st.button("Forget this upload", key="forget_upload"):
                del stored[task]
                st.rerun()
            show_loaded(data)
        return

    if file.size > LIMITS.max_upload_bytes:
        st.error(
            f"{md_escape(file.name)} is {file.size / 2**20:,.1f} MB; at most "
            f"{LIMITS.max_upload_bytes / 2**20:,.0f} MB is accepted. Upload fewer or smaller images."
        )
        return
    content = file.getvalue()
    key = (hashlib.sha256(content).hexdigest(), file.name, task)
    cached = st.session_state.get(RESULT_KEY)
    if cached is None or cached[0] != key or (cached[2] and task not in stored):  # new, or dropped since
        with st.spinner("Checking and loading your images…"):
            folder = uploads.session_dir(session_id())
            outcome = uploads.handle_upload(content, file.name, task, folder, LIMITS, cancelled=sessions.ended_check())
        notice = remember(outcome.data) if outcome.data is not None else ""
        st.session_state[RESULT_KEY] = cached = (key, outcome.message, outcome.data is not None, notice)
    _, message, loaded, notice = cached
    if not loaded:
        st.error(md_message(message))
        return
    data = st.session_state[uploads.SESSION_KEY][task]
    st.success(
        f"{md_message(message)}\n\nYour upload is now available on the Experiment page as "
        f"'{md_escape(uploads.experiment_name(data))}'."
    )
    if notice:
        st.info(md_message(notice))
    show_loaded(data)


# ---------------------------------------------------------------- page

ensure_app_navigation()
projector_css()
st.title("Data")
st.markdown(
    "Every experiment trains heads on a small labelled image dataset. Look at the samples to see what "
    "each task's labels mean, or upload your own images."
)
samples_tab, upload_tab = st.tabs(["Sample datasets", "Upload your own"])
with samples_tab:
    sample_section()
with upload_tab:
    upload_section()
