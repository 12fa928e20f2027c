"""'Repeat over N seeds': the picker, the training loop (one gated, cached sweep per seed) and the spread."""

from __future__ import annotations

import streamlit as st

from lib.backbones.registry import is_random
from lib.experiment import Experiment
from lib.report.base import run_names
from lib.report.curves import seed_band_curves
from lib.train.metrics import primary_metric
from lib.train.seeds import SEED_CHOICES, SeedSweeps, seed_range
from ui.components import VIEWS, chart_columns, draw_chart, train_with_progress


def seeds_picker(where, key: str, default: int) -> int:
    """A 1 / 3 / 5 choice of how many seeds to repeat the sweep over (returns 1 when cleared)."""
    if key not in st.session_state:
        st.session_state[key] = default if default in SEED_CHOICES else 1
    picked = where.segmented_control(
        "Repeat over seeds", SEED_CHOICES, key=key, format_func=lambda n: f"{n} seed{'s' if n > 1 else ''}",
        help="Train the same heads again with seeds s, s+1, …: curves get a band from the lowest to the highest "
             "seed and the numbers a spread, so a finding rests on more than one draw. Each extra seed retrains "
             "the heads only (the backbone features are cached).")
    return int(picked or 1)


def train_seeds_with_progress(exp: Experiment, key: str) -> SeedSweeps | None:
    """Train `exp` once per seed (seed, seed+1, …, exp.seeds of them); None if any seed failed (shown)."""
    sweeps = []
    holder = st.empty()  # each seed's progress and summary replace the previous seed's
    seeds = seed_range(exp.seed, exp.seeds)
    for k, seed in enumerate(seeds, 1):
        with holder.container():
            if len(seeds) > 1:
                st.caption(f"Seed {seed} ({k} of {len(seeds)})")
            sweep = train_with_progress(exp.with_(seed=seed), key=f"{key}-s{seed}")
        if sweep is None:
            return None
        sweeps.append(sweep)
    return SeedSweeps(tuple(sweeps))


def render_seed_spread(rep: SeedSweeps, key: str) -> None:
    """Over several seeds: each head's final metric as mean ± sd (min–max), and (in the Curves view) the
    metric and validation loss curves as mean lines with min–max bands. Nothing for one seed."""
    if len(rep.sweeps) < 2:
        return
    sweep = rep.first
    metric = primary_metric(sweep.task)
    percent = metric != "val_mae"
    st.subheader(f"Over {len(rep.sweeps)} seeds ({rep.seeds[0]}–{rep.seeds[-1]})")
    st.caption("The results above are seed " + str(rep.seeds[0]) + "'s. Here: mean ± standard deviation "
               "(lowest–highest seed).")
    names = run_names(sweep)
    st.table([{"head": f"{i + 1}. {names[i]}",  # a table cell is plain text, never Markdown
               metric.removeprefix("val_").replace("_", " "): rep.final(i, metric).text(percent=percent),
               "validation loss": rep.final(i, "val_loss").text()} for i in range(rep.n_runs)])
    if st.session_state.get(f"{key}-view") not in (None, VIEWS[0]):
        st.caption("The band charts are under Curves.")  # they belong with the curves, not the outputs
        return
    random_weights = is_random(sweep.weights)
    for col, what in zip(chart_columns(2), (metric, "val_loss"), strict=True):  # stacked on a projector
        with col:
            draw_chart(seed_band_curves(rep, what), key=f"{key}-band-{what}", random_weights=random_weights)
