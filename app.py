"""Head Lab: the entry point, router and Home page.

The home page draws before TensorFlow is imported; TensorFlow is warmed up in the background so
the first Train click does not pay for it.
"""

from __future__ import annotations

import threading

import streamlit as st

st.set_page_config(page_title="Head Lab", page_icon=":material/science:", layout="wide")


@st.cache_resource(show_spinner=False)
def _warm_up() -> threading.Thread:
    """Import the heavy libraries once per server process, in one background thread.

    One thread, and pages wait for it (`_imports_ready`) before running: two threads importing pandas
    or TensorFlow at the same moment can get a half-initialised module ("partially initialized module
    'pandas' has no attribute 'Series'"), which a page load right after a server start once showed.
    """

    def work() -> None:
        import keras  # noqa: F401
        import pandas  # noqa: F401
        import PIL.Image  # noqa: F401
        import plotly.graph_objects  # noqa: F401

        # then every lesson's sweeps, in a thread of their own (lib/serve/warmup.py)
        from ui.warm import warm_lessons

        warm_lessons()

    thread = threading.Thread(target=work, name="headlab-warm-up", daemon=True)
    thread.start()
    return thread


def _imports_ready() -> None:
    """Wait (once per server start, a few seconds) until the warm-up thread has imported everything."""
    warm = _warm_up()
    if warm.is_alive():
        with st.spinner("Starting up (loading TensorFlow, once per server start)…"):
            warm.join()


def _join_box() -> None:
    """Join a room by its code (for a participant who cannot scan the projector's QR code)."""
    from lib.common.errors import HeadLabError
    from lib.common.text import md_message
    from ui.room import room_store

    with st.container(border=True):
        st.markdown("**In a workshop?** Type the room code your teacher shows.")
        row = st.container(horizontal=True, vertical_alignment="bottom")
        typed = row.text_input("Room code", key="home-room-code", placeholder="e.g. ABC234", max_chars=12)
        if row.button("Join room", key="home-join", icon=":material/login:"):
            try:
                room = room_store().room(typed)
            except HeadLabError as e:  # unknown, expired or mistyped: one line, and the box stays
                st.error(md_message(e))
            else:
                st.switch_page(ROOM_PAGE, query_params={"code": room.code})


def home() -> None:
    from ui.components import projector_css

    projector_css()
    st.title("Head Lab")
    st.markdown(
        "**What happens at the head of a transfer-learning model?** Pick the last layer's units, activation, "
        "loss and initializer, train several heads side by side on a pretrained backbone in seconds, and see "
        "what each one *really* outputs — not just whether its loss fell."
    )
    _join_box()
    c1, c2 = st.columns(2)
    with c1:
        if st.button("Start here: the first lesson", type="primary", icon=":material/play_arrow:"):
            st.session_state["lesson"] = "sigmoid-vs-softmax"
            st.switch_page(LESSONS_PAGE)
    with c2:
        st.page_link(EXPERIMENT_PAGE, label="Or build your own experiment", icon=":material/tune:")

    st.subheader("Backbones and their weights")
    st.caption("Transfer learning needs pretrained weights. This is what this server has, decided without the internet.")
    _imports_ready()
    with st.spinner("Checking weights…"):
        from lib.backbones.registry import is_random, status_table

        rows = status_table()
    # a static table: its cells wrap, where a dataframe cut "what to do" off at the column's edge
    st.table([{"backbone": r["title"], "weights": r["status"], "what to do": r["advice"]} for r in rows],
             hide_index=True)
    n_random = sum(is_random(r["status"]) for r in rows)
    if n_random:
        st.caption(f"{n_random} of {len(rows)} backbones would train on random weights here: their results show "
                   "what a head learns from random features, not transfer learning, and are labelled so.")


from ui.components import keep_keras_state  # noqa: E402  (after set_page_config)

keep_keras_state()  # before Keras is imported anywhere: every page's run would otherwise clear it
_warm_up()
HOME_PAGE = st.Page(home, title="Home", icon=":material/home:", default=True)
EXPERIMENT_PAGE = st.Page("pages/experiment.py", title="Experiment", icon=":material/tune:", url_path="experiment")
LESSONS_PAGE = st.Page("pages/lessons.py", title="Lessons", icon=":material/school:", url_path="lessons")
DATA_PAGE = st.Page("pages/data.py", title="Data", icon=":material/photo_library:", url_path="data")
ROOM_PAGE = st.Page("pages/room.py", title="Room", icon=":material/groups:", url_path="room")

# A teacher's link opens the room for the projector: large text unless the teacher turns it off (set
# before the toggle is drawn, which then owns the key).
if "projector" not in st.session_state and st.query_params.get("teacher"):
    st.session_state["projector"] = True

with st.sidebar:
    st.toggle("Projector mode (large text)", key="projector")

page = st.navigation([HOME_PAGE, LESSONS_PAGE, EXPERIMENT_PAGE, DATA_PAGE, ROOM_PAGE])
if page is not HOME_PAGE:  # Home draws its text first and waits before it needs Keras
    _imports_ready()
page.run()
