"""Streamlit pieces shared by the pages: head editor, verdict badges, training with progress, results.

Widgets and layout only; every number and figure comes from lib/.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import streamlit as st

from lib.common.errors import HeadLabError
from lib.common.text import md_escape, md_message
from lib.data.uploads import UPLOAD_PREFIX
from lib.experiment import Experiment
from lib.heads.config import (
    ACTIVATIONS,
    BIAS_INITIALIZERS,
    HIDDEN_ACTIVATIONS,
    KERNEL_INITIALIZERS,
    LABEL_FORMATS,
    LOSSES,
    MAX_FINE_TUNE_EPOCHS,
    OPTIMIZERS,
    POOLINGS,
    HeadConfig,
    format_initializer,
    parse_hidden,
)
from lib.heads.naming import distinct_labels
from lib.heads.pairings import Verdict, on_other_backend
from lib.report.base import run_names
from lib.report.confusion import confusion_matrix, reliability_diagram
from lib.report.curves import grad_norm_curves, loss_curves, metric_curves
from lib.report.html_report import html_report
from lib.report.inside import confidently_wrong_text
from lib.report.outputs import output_histograms, output_sum_histogram
from lib.serve.progress import RedrawThrottle, live_loss_rows
from lib.train.verdict import RunVerdict, combine
from ui.inside import render_images, render_loss_seen

log = logging.getLogger("headlab.ui")
LEVEL_STYLE = {"ok": ("green", "OK", ":material/check_circle:"),
               "warning": ("orange", "Warning", ":material/warning:"),
               "error": ("red", "Mismatch", ":material/error:")}
VIEWS = ("Curves", "Outputs before / after", "What the loss saw", "Images", "Confusion & calibration", "Export")


# ---- page chrome ----------------------------------------------------------------------------------
def ensure_app_navigation() -> None:
    """Run every page through app.py's st.navigation.

    Until some session has executed app.py, Streamlit treats the `pages/` folder as a legacy
    multipage app, so the first visitor of a direct link (e.g. /lessons?lesson=…) would get the page
    file alone: no wide layout, no sidebar, a raw file list as navigation. Switching that mode off
    and rerunning sends the same URL through app.py instead. (Under AppTest there is no server
    runtime and the test harness itself decides which file runs, so nothing is changed there.)
    """
    from streamlit import runtime
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and runtime.exists():
        PagesManager.uses_pages_directory = False
        st.rerun()


def keep_keras_state() -> None:
    """Stop Streamlit from clearing Keras's global session at the end of every script run.

    Streamlit does that (keras.backend.clear_session(): a full gc.collect() and a reset of TF's
    default graph and kernel cache) after each run of each session, for apps that rebuild models on
    every rerun. Head Lab builds its models in lib/ and pools them across sessions, so the clear only
    cost CPU — about a quarter of a second per click, the largest share of a click's server time —
    and ran in the middle of other sessions' training. Matplotlib figures are still closed, as before.
    Relies on `script_runner._clean_problem_modules`, a Streamlit internal (Streamlit is pinned);
    tests/test_app.py checks that a run no longer clears the session.
    """
    import sys

    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner._clean_problem_modules, "headlab", False):
        return

    def clean_matplotlib_only() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    clean_matplotlib_only.headlab = True
    clean_matplotlib_only.replaced = script_runner._clean_problem_modules
    script_runner._clean_problem_modules = clean_matplotlib_only


def projector_on() -> bool:
    """Whether this session turned projector mode on (sidebar toggle in app.py)."""
    return bool(st.session_state.get("projector"))


def projector_css() -> None:
    """Bigger everything for a projector, if the user turned it on.

    The root font size scales every rem-sized thing Streamlit draws — body text, headings (the lesson
    question), widgets — in proportion, where a px size on every `st-` class once shrank titles to body
    size. Charts are not zoomed by CSS (plotly then measured the wrong width and clipped legends and
    axes): `draw_chart` draws them larger, at full width (`chart_columns`).
    """
    if projector_on():
        st.html("<style>html {font-size: 22px !important;}"
                " [data-testid=stMarkdownContainer] p, [data-testid=stMarkdownContainer] li,"
                " [data-testid=stCaptionContainer] {font-size: 1rem !important;}"
                " h1 {font-size: 2.8rem !important;} h2 {font-size: 2.1rem !important;}"
                " h3 {font-size: 1.6rem !important;} h4 {font-size: 1.35rem !important;}"
                # a metric's value is a markdown paragraph too: without this it shrank to body size
                " [data-testid=stMetricValue], [data-testid=stMetricValue] p {font-size: 2.2rem !important;}</style>")


def session_id() -> str:
    """A stable id for this browser session (per-session upload folders, logs)."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex
    return st.session_state["session_id"]


# ---- shared, read-only resources (one copy per server process) -----------------------------------
@st.cache_resource(show_spinner=False)
def shared_backbone(name: str, size: int):
    from lib.backbones.registry import load_backbone

    return load_backbone(name, size, "auto")


@st.cache_resource(show_spinner=False)
def shared_sample(name: str, task: str):
    from lib.data.samples import load_sample

    return load_sample(name, task)


def dataset_options(task: str) -> list[str]:
    """Sample datasets with this task, then this session's uploads for it."""
    from lib.data.samples import list_datasets

    names = [c["name"] for c in list_datasets() if task in c["tasks"]]
    uploads = st.session_state.get("user_data", {})
    if task in uploads:
        names.append(UPLOAD_PREFIX + uploads[task].dataset)
    return names


def task_data(dataset: str, task: str):
    """The TaskData for a dataset name (sample, or this session's upload)."""
    if dataset.startswith(UPLOAD_PREFIX):
        uploads = st.session_state.get("user_data", {})
        if task not in uploads:
            raise HeadLabError("Your upload is no longer available in this session; upload it again on the Data page.")
        return uploads[task]
    return shared_sample(dataset, task)


# ---- verdicts -------------------------------------------------------------------------------------
def verdict_badge(verdict: Verdict | RunVerdict, *, show_message: bool = True) -> None:
    """The level's badge: the table's Verdict before training, the combined RunVerdict after it; then what
    the same head does on the other measured backend."""
    color, text, icon = LEVEL_STYLE[verdict.level]
    st.badge(text, icon=icon, color=color)
    if show_message:
        st.caption(verdict.message)
    _other_backend_note(verdict)


def _other_backend_note(verdict: Verdict | RunVerdict) -> None:
    """Beside a verdict: what the same head does on JAX, from the measured table (a teacher on JAX sees its truth)."""
    table = verdict.table if isinstance(verdict, RunVerdict) else verdict
    note = on_other_backend(table, "jax" if table.backend != "jax" else "tensorflow")
    if note:
        st.caption(f":material/swap_horiz: {md_message(note)}")


# ---- head editor ----------------------------------------------------------------------------------
def _init_keys(prefix: str, h: HeadConfig) -> None:
    """Put a config's values into widget keys once (widgets then own them)."""
    k_name, k_params = h.kernel_init()
    b_name, b_params = h.bias_init()
    values = {
        "name": h.name, "auto_units": h.units is None, "units": h.units or 1, "activation": h.activation,
        "loss": h.loss, "from_logits": h.from_logits, "labels": h.labels, "k_init": k_name,
        "b_init": b_name, "hidden": ";".join(f"{u}:{a}" for u, a in h.hidden), "dropout": h.dropout,
        "pooling": h.pooling, "optimizer": h.optimizer, "lr": h.learning_rate, "unfrozen": h.unfrozen,
        "ft_epochs": h.fine_tune_epochs, "ft_lr": h.fine_tune_learning_rate,
    }
    for p, v in k_params.items():
        values[f"k_{p}"] = v
    for p, v in b_params.items():
        values[f"b_{p}"] = v
    for key, value in values.items():
        st.session_state.setdefault(f"{prefix}{key}", value)


def head_editor(prefix: str, config: HeadConfig, n_outputs: int) -> HeadConfig:
    """Widgets for one head; returns the edited config (or the last valid one, with an error shown)."""
    _init_keys(prefix, config)
    ss = st.session_state
    st.text_input("Name (optional)", key=f"{prefix}name", placeholder=config.label())
    # One widget per row, checkboxes included: side by side in a third of 1280 px (six heads) their
    # labels were cut to "N…" and "fr…".
    st.checkbox(f"Natural units ({n_outputs})", key=f"{prefix}auto_units",
                help="1 for binary and regression; one per class or label otherwise")
    st.number_input("Units", 1, 4096, key=f"{prefix}units", disabled=ss[f"{prefix}auto_units"])
    st.selectbox("Output activation", ACTIVATIONS, key=f"{prefix}activation")
    st.selectbox("Loss", LOSSES, key=f"{prefix}loss")
    st.checkbox("from_logits", key=f"{prefix}from_logits", help="Tell the loss the outputs are logits")
    st.selectbox("Labels", LABEL_FORMATS, key=f"{prefix}labels",
                 help="auto feeds what the loss expects; integer/one_hot force a format")
    with st.expander("Initializers, hidden layers, training"):
        st.selectbox("Kernel initializer", list(KERNEL_INITIALIZERS), key=f"{prefix}k_init")
        for p, default in KERNEL_INITIALIZERS[ss[f"{prefix}k_init"]].items():
            ss.setdefault(f"{prefix}k_{p}", default)
            st.number_input(f"kernel {p}", key=f"{prefix}k_{p}", format="%g")
        st.selectbox("Bias initializer", list(BIAS_INITIALIZERS), key=f"{prefix}b_init",
                     help="log_prior starts the head at the training base rates")
        for p, default in BIAS_INITIALIZERS[ss[f"{prefix}b_init"]].items():
            ss.setdefault(f"{prefix}b_{p}", default)
            st.number_input(f"bias {p}", key=f"{prefix}b_{p}", format="%g")
        st.text_input("Hidden layers", key=f"{prefix}hidden", placeholder="e.g. 128:relu;64:relu",
                      help=f"units:activation, separated by ';' — activations: {', '.join(HIDDEN_ACTIVATIONS)}")
        st.slider("Dropout", 0.0, 0.9, key=f"{prefix}dropout", step=0.05)
        st.selectbox("Pooling", POOLINGS, key=f"{prefix}pooling",
                     help="gap = global average, max = global max, flatten keeps every position")
        st.selectbox("Optimizer", OPTIMIZERS, key=f"{prefix}optimizer")
        st.number_input("Learning rate", min_value=1e-6, max_value=10.0, key=f"{prefix}lr", format="%g")
        st.number_input("Unfrozen top backbone layers", 0, 2000, key=f"{prefix}unfrozen",
                        help="0 = frozen base; rounded down to a block boundary")
        st.number_input("Fine-tune epochs (phase 2)", 0, MAX_FINE_TUNE_EPOCHS, key=f"{prefix}ft_epochs",
                        help="0 = one phase. Otherwise the Keras guide's recipe: the head trains on the frozen "
                             "base first, then the unfrozen top layers join it for this many epochs")
        st.number_input("Fine-tune learning rate", min_value=1e-7, max_value=10.0, key=f"{prefix}ft_lr",
                        format="%g", disabled=not ss[f"{prefix}ft_epochs"])
    try:
        k_name, b_name = ss[f"{prefix}k_init"], ss[f"{prefix}b_init"]
        new = HeadConfig(
            task=config.task, name=ss[f"{prefix}name"].strip(),
            units=None if ss[f"{prefix}auto_units"] else int(ss[f"{prefix}units"]),
            activation=ss[f"{prefix}activation"], loss=ss[f"{prefix}loss"],
            from_logits=bool(ss[f"{prefix}from_logits"]), labels=ss[f"{prefix}labels"],
            kernel_initializer=format_initializer(
                k_name, {p: float(ss[f"{prefix}k_{p}"]) for p in KERNEL_INITIALIZERS[k_name]}, KERNEL_INITIALIZERS),
            bias_initializer=format_initializer(
                b_name, {p: float(ss[f"{prefix}b_{p}"]) for p in BIAS_INITIALIZERS[b_name]}, BIAS_INITIALIZERS),
            hidden=parse_hidden(ss[f"{prefix}hidden"]), dropout=float(ss[f"{prefix}dropout"]),
            pooling=ss[f"{prefix}pooling"], optimizer=ss[f"{prefix}optimizer"],
            learning_rate=float(ss[f"{prefix}lr"]), unfrozen=int(ss[f"{prefix}unfrozen"]),
            fine_tune_epochs=int(ss[f"{prefix}ft_epochs"]), fine_tune_learning_rate=float(ss[f"{prefix}ft_lr"]))
    except HeadLabError as e:
        st.error(f"{md_message(e)} — keeping the previous setting.")
        return config
    return new


def clear_head_keys(prefix: str) -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[key]


# ---- training -------------------------------------------------------------------------------------
def train_with_progress(exp: Experiment, key: str):
    """Train an experiment behind the server's training gate, with progress and live loss curves.

    Returns the SweepResult, or None after showing an actionable error.
    """
    import pandas as pd

    from lib.serve.shared_training import train_shared

    status = st.empty()
    bar = st.progress(0.0, text="Waiting for a training slot…")
    live = st.empty()
    history: dict[int, list[float]] = {}
    names = distinct_labels(exp.heads)  # the live chart's legend, as the results will name the heads
    throttle = RedrawThrottle()

    def on_wait(place: int) -> None:
        bar.progress(0.0, text=f"Queued: place {place} in line — the server trains a few sweeps at a time.")

    def on_progress(event: dict) -> None:
        if event["stage"] == "features":
            bar.progress(min(0.3, 0.3 * event["fraction"]), text="Extracting backbone features (once per dataset)…")
            return
        history.setdefault(event["run"], []).append(event["history"].get("loss", float("nan")))
        done = event["epoch"] / event["epochs"]
        redraw_bar, redraw_curves = throttle.due(event.get("together", 1))
        if redraw_bar:
            bar.progress(0.3 + 0.7 * done,
                         text=f"Training {len(exp.heads)} heads: epoch {event['epoch']}/{event['epochs']}")
        if redraw_curves:
            rows = live_loss_rows(history, names)
            if rows:  # long format: a dict of lists made head names the x axis and epochs the legend
                live.line_chart(pd.DataFrame(rows), x="epoch", y="training loss", color="head", height=260)

    try:
        data = task_data(exp.dataset, exp.task)
        bb = shared_backbone(exp.backbone, exp.input_size)
        owner = session_id() if exp.dataset.startswith(UPLOAD_PREFIX) else ""  # uploads are never shared
        clicked = train_shared(exp.heads, data, bb, exp.epochs, exp.seed, owner, on_wait=on_wait,
                               on_start=lambda: bar.progress(0.0, text="Starting…"), progress=on_progress)
        sweep, shared, warmed = clicked.sweep, clicked.shared, clicked.warmed
    except HeadLabError as e:
        status.error(md_message(e))  # may quote a head's name
        return None
    except Exception:
        log.exception("training failed")
        status.error("Training failed unexpectedly; the details are in the server log. Try again, or change a setting.")
        return None
    finally:
        live.empty()
    bar.empty()
    t = sweep.timing
    features = "from cache" if t["features_cached"] else f"extracted in {t['features_seconds']:.1f} s"
    again = " Someone ran exactly this sweep before: same settings and seed, same curves, shown at once." \
        if shared else ""
    if warmed:  # the server's own warm-up, not another participant
        again = " The server trained this lesson ahead of time: same settings and seed, same curves, shown at once."
    heads = f"{len(sweep.runs)} head{'s' if len(sweep.runs) != 1 else ''}"
    others = int(t.get("sweeps_trained_together", 1)) - 1
    whose = "participant's sweep" if others == 1 else "participants' sweeps"
    together = "" if shared or others < 1 else f", together with {others} other {whose}"
    status.success(f"Trained {heads} × {sweep.epochs} epochs in {t['training_seconds']:.1f} s{together} "
                   f"(features {features}).{again}")
    return sweep


# ---- results --------------------------------------------------------------------------------------
def draw_chart(fig, key: str, random_weights: bool = False, **select):
    """A chart with the app's look (projector size, the random-weights mark); `select` (on_select,
    selection_mode) makes it report clicks, returned as Streamlit's selection event."""
    if random_weights:
        from lib.report.base import mark_random_weights

        mark_random_weights(fig)
    if projector_on():
        from lib.report.base import projector

        projector(fig)
    return st.plotly_chart(fig, key=key, config={"displaylogo": False}, **select)


def chart_columns(n: int) -> list:
    """n side-by-side columns; in projector mode one full-width slot per chart instead (half a page
    cannot hold a chart drawn 1.3 times larger)."""
    if projector_on():
        return [st.container() for _ in range(n)]
    return st.columns(n)


def render_results(sweep, key: str) -> None:
    """Everything about a finished sweep: verdicts, curves, outputs, exports."""
    from lib.backbones.registry import is_random
    from lib.report.results import history_rows

    names = run_names(sweep)
    random_weights = is_random(sweep.weights)

    def chart(fig, key: str, **select):  # every chart of a random-weight sweep says so on itself
        return draw_chart(fig, key, random_weights, **select)

    if random_weights:
        st.warning(f"The backbone's weights were random ({sweep.weights}): these results compare heads on random "
                   "features, not transfer learning. Every chart below says so.", icon=":material/warning:")
    if sweep.notes:
        for note in sweep.notes:
            st.info(md_message(note))
    st.caption(f"{md_escape(sweep.dataset)} · {sweep.task} · {sweep.backbone} @ {sweep.input_size}px · weights: {sweep.weights} · "
               f"{sweep.epochs} epochs · seed {sweep.seed} · Keras {sweep.keras_version} on {sweep.backend}")
    cols = st.columns(min(len(sweep.runs), 2 if projector_on() else 3))  # larger text needs wider cards
    for i, run in enumerate(sweep.runs):
        with cols[i % len(cols)].container(border=True):
            st.markdown(f"**{i + 1}. {md_escape(names[i])}**")
            verdict = combine(run, sweep)  # after training: the table and what the run measured, as one
            # The message says whether the run shows the table's problem; otherwise the symptoms say it all.
            verdict_badge(verdict, show_message=verdict.table.level != "ok")
            metric = _headline_metric(sweep, run)
            wrong = confidently_wrong_text(sweep, run)
            if metric and wrong:
                a, b = st.columns(2)
                a.metric(*metric)
                b.metric("confidently wrong", wrong, help="Wrong with a probability of 0.9 or more (one unit: "
                         "0.9 or more, or 0.1 or less): the calibration lesson in one number.")
            elif metric:
                st.metric(*metric)
            for d in verdict.symptoms:
                (st.error if d["severity"] == "error" else st.warning)(
                    f"{md_message(d['message'])}  \n*Knob:* {md_escape(d['knob'])}")
            if verdict.level == "ok" and run.status == "ok":
                st.success("Nothing suspicious in what predict() returned.")
            with st.expander("Show Keras code"):  # on the card: the head a teacher is pointing at
                st.code(_keras_code(sweep, run), language="python")
            with st.expander("Why (pairing table)"):
                st.caption(f"The pairing table's verdict before training: {verdict.table.level}")
                st.write(verdict.table.message)
                for s in verdict.table.symptoms:
                    st.caption(f"On the plots: {s}")
                for w in run.warnings:
                    st.caption(f"Keras warned: {md_message(w)}")
                st.caption(f"Backbone: {run.cut}")

    # Only the chosen view is built and sent (tabs would build all ~20 charts on every rerun, which is
    # what slowed 30 simultaneous sessions down most in the load benchmark).
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], key=f"{key}-view", label_visibility="collapsed")
    if view == VIEWS[0] or view is None:
        c1, c2 = chart_columns(2)
        with c1:
            chart(loss_curves(sweep, log_y=st.toggle("log scale", key=f"{key}-logy")), f"{key}-loss")
        with c2:
            chart(metric_curves(sweep), f"{key}-metric")
        chart(grad_norm_curves(sweep), f"{key}-grad")
        if len(sweep.runs) > 1 and st.toggle("One loss chart per head", key=f"{key}-split"):
            per_row = chart_columns(min(3, len(sweep.runs)))
            for i, run in enumerate(sweep.runs):
                with per_row[i % len(per_row)]:
                    single = dataclasses.replace(sweep, runs=[run])
                    chart(loss_curves(single).update_layout(title_text=f"{i + 1}. {names[i]}"), f"{key}-loss-{i}")
    elif view == VIEWS[1]:
        for i in range(len(sweep.runs)):
            st.markdown(f"#### {i + 1}. {md_escape(names[i])}")
            # full width each: the before/after panels need the room to stay readable when projected
            chart(output_histograms(sweep, i), f"{key}-hist-{i}")
            if sweep.task != "regression":  # sums of outputs mean nothing for a regression head
                chart(output_sum_histogram(sweep, i), f"{key}-sum-{i}")
    elif view == VIEWS[2]:
        render_loss_seen(sweep, key, chart)
    elif view == VIEWS[3]:
        render_images(sweep, key, chart, projector_on())
    elif view == VIEWS[4]:
        if sweep.task == "regression":
            st.caption("Regression has no confusion matrix: see the predicted-vs-true scatter under Outputs.")
        else:
            for i in range(len(sweep.runs)):
                c1, c2 = chart_columns(2)
                with c1:
                    if sweep.task != "multilabel":
                        chart(confusion_matrix(sweep, i), f"{key}-cm-{i}")
                with c2:
                    chart(reliability_diagram(sweep, i), f"{key}-rel-{i}")
    else:
        import pandas as pd

        st.download_button("Download run history (CSV)", pd.DataFrame(history_rows(sweep)).to_csv(index=False),
                           file_name="headlab_history.csv", mime="text/csv", key=f"{key}-csv")
        if st.button("Prepare HTML report", key=f"{key}-prep"):
            st.session_state[f"{key}-report"] = html_report(sweep)
        if f"{key}-report" in st.session_state:
            st.download_button("Download HTML report", st.session_state[f"{key}-report"],
                               file_name="headlab_report.html", mime="text/html", key=f"{key}-html")
        st.caption("Each head's Keras code is on its card above (\"Show Keras code\").")


def _headline_metric(sweep, run) -> tuple[str, str] | None:
    from lib.train.metrics import primary_metric

    name = primary_metric(sweep.task)
    value = run.final.get(name)
    if value is None:
        return None
    label = {"val_accuracy": "val accuracy", "val_exact_match": "val exact match", "val_mae": "val MAE"}[name]
    shown = f"{value:.1%}" if name != "val_mae" else f"{value:.3g} {sweep.unit}".strip()
    return label, shown


def _keras_code(sweep, run) -> str:
    try:
        from lib.heads.codegen import keras_script
    except ImportError:
        return "# code export is not available in this build"
    return keras_script(run.config, backbone=sweep.backbone, input_size=sweep.input_size, n_outputs=sweep.n_outputs,
                        label_names=sweep.label_names, epochs=sweep.epochs, seed=sweep.seed, batch_size=sweep.batch_size)
