"""Start the lesson warm-up (lib/serve/warmup.py) once per server process, with the pages' own loaders."""

from __future__ import annotations

import streamlit as st


@st.cache_resource(show_spinner=False)
def warm_lessons():
    """The process's LessonWarmer (None when HEADLAB_WARM_LESSONS=0), started on first call.

    It loads data and backbones through the pages' st.cache_resource loaders, so a lesson's backbone is
    built once whether the warm-up or a click needs it first. `lib.lessons` is imported here, in the
    caller's thread, so that no page imports it at the same moment as the warm-up thread.
    """
    from lib.serve.warmup import enabled, start_warmup

    if not enabled():
        return None
    from lib.lessons import LESSONS
    from ui.components import shared_backbone, shared_sample

    return start_warmup(LESSONS, data_for=shared_sample, backbone_for=shared_backbone)
