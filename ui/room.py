"""A session's part in a classroom room: the shared room database, who this session is in a room
(a participant id, the teacher's secret), the links, and the buttons other pages put up
("Teach this to a room", "Share my experiment with the room", Home's join box).

Widgets and session state only; what a room is and what it asks live in lib/classroom and lib/workshop.
"""

from __future__ import annotations

import os
import re

import streamlit as st

from lib.common.errors import HeadLabError
from lib.common.text import md_message

ROOM_PAGE = "pages/room.py"
PUBLIC_URL_ENV = "HEADLAB_PUBLIC_URL"  # the address participants reach this server by, when the teacher's is not it
DEFAULT_URL = "http://localhost:8501"


def room_store():
    """The room database: open_store keeps one per process (a pool of connections, SQLite or PostgreSQL)."""
    from lib.classroom.store import open_store

    return open_store()


ME = "me"  # the Room page's query parameter holding the participant's id
_PID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what codes.new_participant_id makes (token_urlsafe(16): 22 chars)


def participant_id() -> str:
    """This participant's id in every room it joins: the session's, else the one in the page's link.

    A browser reload starts a new Streamlit session (measured: the Join form came back, and a second
    vote would have counted), so the Room page also keeps the id in its address (`me=`): a reload, or
    the phone reopening the tab, is the same participant with the same one vote per round.
    """
    ss = st.session_state
    if "room_pid" not in ss:
        from lib.classroom.codes import new_participant_id

        from_link = st.query_params.get(ME, "")
        ss["room_pid"] = from_link if _PID.fullmatch(from_link) else new_participant_id()
    return ss["room_pid"]


def teacher_secret(code: str) -> str | None:
    """The secret this session holds for room `code` (it created the room, or opened its teacher link)."""
    return st.session_state.get("room_secrets", {}).get(code)


def keep_secret(code: str, secret: str) -> None:
    st.session_state.setdefault("room_secrets", {})[code] = secret


def base_url() -> str:
    """The app's address as participants should open it: $HEADLAB_PUBLIC_URL, else the teacher's own."""
    from lib.workshop import app_address

    return (os.environ.get(PUBLIC_URL_ENV) or app_address(st.context.url or DEFAULT_URL)).rstrip("/")


def _start_room(subject: str) -> None:
    """Button callback: create the room, keep its secret, make the teacher's pages large (projector mode:
    set here, in a callback, because the sidebar's toggle owns that key once it is drawn)."""
    try:
        room, secret = room_store().create_room(subject, _n_choices(subject))
    except HeadLabError as e:
        st.session_state["room_start_error"] = str(e)
        return
    keep_secret(room.code, secret)
    st.session_state["projector"] = True
    st.session_state["room_goto"] = room.code


def _n_choices(subject: str) -> int:
    from lib.workshop import question_for

    return len(question_for(subject).choices)


def teach_button(where, subject: str | None, help_text: str = "") -> None:
    """'Teach this to a room' (key teach-room): creates a room about `subject` and opens its teacher page.
    `subject` None draws it disabled, with `help_text` saying why."""
    where.button("Teach this to a room", key="teach-room", icon=":material/co_present:",
                 disabled=subject is None, help=help_text or "Create a room: the class joins by a code or QR code, "
                 "votes on this question, and sees the measured answer when you reveal it.",
                 on_click=_start_room, args=(subject,))
    follow_room_start()


def follow_room_start() -> None:
    """After a Teach click: open the new room's page, or say why there is none."""
    ss = st.session_state
    if "room_start_error" in ss:
        st.error(md_message(ss.pop("room_start_error")))
    code = ss.pop("room_goto", None)
    if code:
        st.switch_page(ROOM_PAGE, query_params={"code": code})


def joined_room() -> str | None:
    """The room this session last joined as a participant (for 'Share my experiment')."""
    return st.session_state.get("room_code")


def share_button(where, exp, is_upload: bool) -> None:
    """'Share my experiment with the room' (key room-share), for a session that joined a room."""
    code = joined_room()
    if not code or teacher_secret(code):
        return
    if where.button("Share my experiment with the room", key="room-share", icon=":material/ios_share:",
                    disabled=is_upload, help="Your uploaded images stay in your session: switch to a sample dataset "
                    "to share." if is_upload else f"Sends room {code} a one-line summary of your heads and the "
                    "link to this experiment; the teacher can open it on the projector."):
        from lib.workshop import experiment_query, experiment_summary

        try:
            room_store().share(code, participant_id(), experiment_summary(exp), experiment_query(exp))
        except HeadLabError as e:
            st.error(md_message(e))
        else:
            st.success(f"Shared with room {code}.", icon=":material/check:")


def shared_result(exp):
    """The SeedSweeps of `exp` if this server already holds every seed's sweep (someone trained it: at a
    reveal, the teacher), else None. Nothing is trained or queued, and nothing is drawn: a participant's
    page after the reveal only looks its results up. (A room's experiments are on sample data, which
    every session shares, so the cache key has no owner.)"""
    from lib.serve.shared_training import find_shared
    from lib.train.seeds import SeedSweeps, seed_range
    from ui.components import shared_backbone, task_data

    data = task_data(exp.dataset, exp.task)
    bb = shared_backbone(exp.backbone, exp.input_size)
    sweeps = []
    for seed in seed_range(exp.seed, exp.seeds):  # the same key as a click's (lib/serve/shared_training.py)
        shared = find_shared(exp.heads, data, bb, exp.epochs, seed)
        if shared is None:
            return None
        sweeps.append(shared)
    return SeedSweeps(tuple(sweeps))
