"""The results views that look inside the heads: what the loss saw (with the epoch scrubber) and the
images behind the numbers (top-losses galleries, one image in every head). Widgets and layout only;
every figure and number comes from lib.report.inside."""

from __future__ import annotations

import streamlit as st

from lib.common.errors import HeadLabError
from lib.common.text import md_escape
from lib.data.gallery import thumbnail
from lib.data.uploads import UPLOAD_PREFIX
from lib.report.base import run_names
from lib.report.inside import (
    image_picker_figure,
    loss_seen_figure,
    no_gallery_reason,
    same_image_figure,
    scrubber_figure,
    top_loss_cards,
    val_images,
)

GALLERY_PER_HEAD = 6  # a row per head: its worst images side by side, the heads one under another


def render_loss_seen(sweep, key: str, chart) -> None:
    """Every head moving together (slider and play button), then each head's before/after panels."""
    st.caption("What each head's loss was computed on, measured on this run, beside what predict() returned. "
               "Drag the epoch slider under the chart, or press play: the browser redraws it, no waiting.")
    chart(scrubber_figure(sweep), f"{key}-scrub")
    names = run_names(sweep)
    for i, run in enumerate(sweep.runs):
        # the measured sentence stays in view; the before/after panels open on request
        said = run.loss_used.statement if run.loss_used else f"Keras refused this head: {run.error}"
        st.markdown(f"**{i + 1}. {md_escape(names[i])}:** {md_escape(said)}")
        with st.expander(f"{i + 1}. {md_escape(names[i])}: before and after training", expanded=len(sweep.runs) == 1):
            chart(loss_seen_figure(sweep, i), f"{key}-seen-{i}")


def _sweep_data(sweep):
    """The data the sweep was trained on, if this session still has it (a sample, or its upload)."""
    from ui.components import shared_sample

    uploads = st.session_state.get("user_data", {})
    upload = uploads.get(sweep.task)
    if upload is not None and upload.dataset == sweep.dataset:
        return upload
    try:
        return shared_sample(sweep.dataset.removeprefix(UPLOAD_PREFIX), sweep.task)
    except (HeadLabError, OSError, KeyError, ValueError):
        return None


def _pick_by_click(sweep, key: str, chosen_key: str, names: list[str], chart) -> None:
    """A head's images as points; clicking one chooses it (Streamlit's Plotly selection event). Applied once
    per new selection: the chart keeps its selection across reruns, the number box must stay free to change."""
    trained = [i for i, r in enumerate(sweep.runs) if r.status == "ok"]
    if not trained:
        return
    head = st.selectbox("Pick from the images of head", trained, format_func=lambda i: f"{i + 1}. {names[i]}",
                        key=f"{key}-pick-head")
    event = chart(image_picker_figure(sweep, head), f"{key}-picker-{head}", on_select="rerun", selection_mode="points")
    points = (event or {}).get("selection", {}).get("points", [])
    data = points[0].get("customdata") if points else None
    picked = int(data[0] if isinstance(data, list) else data) if data is not None else None
    seen_key = f"{key}-picker-applied"
    if picked is not None and st.session_state.get(seen_key) != (head, picked):
        st.session_state[seen_key] = (head, picked)
        st.session_state[chosen_key] = picked


def render_images(sweep, key: str, chart, projector: bool) -> None:
    """Per head its worst validation images (a row each), then one chosen image in every head."""
    images = val_images(sweep, _sweep_data(sweep))
    if images is None or not len(images):
        st.info("The images of this run are not loaded in this session any more (an upload replaced or "
                "gone): upload them again on the Data page and press Train to see them here.")
        return
    size = 220 if projector else 150
    names = run_names(sweep)
    chosen_key = f"{key}-image-input"  # the number input's own state: a gallery button sets it before it is drawn
    if chosen_key not in st.session_state or not 0 <= st.session_state[chosen_key] < len(images):
        st.session_state[chosen_key] = next((r.top_losses[0][0] for r in sweep.runs if r.top_losses), 0)
    st.subheader("The images each head gets most wrong")
    st.caption("Ranked by each head's own loss on what predict() returned (regression: the absolute error). "
               "Press 'every head' under an image to compare all heads on it below.")
    for i, run in enumerate(sweep.runs):
        st.markdown(f"**{i + 1}. {md_escape(names[i])}**")
        reason = no_gallery_reason(run)
        if reason:
            st.info(md_escape(reason))
            continue
        cards = top_loss_cards(sweep, i, GALLERY_PER_HEAD)
        cols = st.columns(3 if projector else GALLERY_PER_HEAD)
        for k, card in enumerate(cards):
            with cols[k % len(cols)]:
                st.image(thumbnail(images[card.index], size), width=size)
                st.caption(f"#{card.rank} · image {card.index}  \ntrue: {md_escape(card.truth)}  \n"
                           f"output: {md_escape(card.output)}  \n{card.loss_name} {card.loss:.3g}")
                if st.button("every head", key=f"{key}-pick-{i}-{k}", icon=":material/compare:"):
                    st.session_state[chosen_key] = card.index
    st.subheader("Same image, every head")
    _pick_by_click(sweep, key, chosen_key, names, chart)
    n = len(images)
    index = st.number_input("Validation image", min_value=0, max_value=n - 1, step=1, key=chosen_key,
                            help=f"0 to {n - 1}, in validation order")
    left, right = st.columns([1, 3]) if not projector else (st.container(), st.container())
    with left:
        st.image(thumbnail(images[int(index)], 260 if projector else 200), caption=f"validation image {int(index)}")
    with right:
        chart(same_image_figure(sweep, int(index)), f"{key}-same")
