"""This browser session as the server sees it: its Streamlit id, whether its tab is still connected,
and what to free once it has ended.

Streamlit has no public "session ended" hook, so this relies on its runtime (Streamlit is pinned):
`get_script_run_ctx().session_id`, `Runtime.is_active_session` (a session stops being active when
its websocket closes: the tab was closed or lost its connection) and the runtime's uploaded-file
manager. Everything that touches them is here; tests/test_hostile_uploads.py checks them against a
real Runtime.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lib.data import uploads
from lib.data.taskdata import TaskData


def current_id() -> str | None:
    """Streamlit's id of the session running this script (None outside a script run)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else None


def is_connected(session_id: str) -> bool:
    """True while this session's tab is connected; also when it cannot be told (no server running)."""
    if not runtime.exists():
        return True
    return bool(runtime.get_instance().is_active_session(session_id))


def ended_check() -> Callable[[], bool]:
    """`cancelled` for lib.data.uploads.handle_upload: has this session ended? (Safe from any thread.)"""
    sid = current_id()
    if sid is None:
        return lambda: False
    return lambda: not is_connected(sid)


def release_files(session_id: str) -> None:
    """Drop the zip bytes Streamlit holds for a session's file_uploader (it does so itself only
    when the session object is finally shut down, which for a closed tab can be much later)."""
    if runtime.exists():
        runtime.get_instance().uploaded_file_mgr.remove_session_files(session_id)


def free_when_ended(kept: dict[str, TaskData]) -> None:
    """Empty `kept` (this session's uploads) once the session has ended and can no longer reconnect."""
    sid = current_id()
    if sid is None:
        return
    grace = float(st.get_option("server.disconnectedSessionTTL"))
    uploads.session_janitor(is_connected, grace, release_files).watch(sid, kept)
