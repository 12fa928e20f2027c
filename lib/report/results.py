"""A sweep as plain data: the JSON the CLI writes and the tables the app downloads."""

from __future__ import annotations

import math

from lib.train.diagnostics import output_summary
from lib.train.trainer import SweepResult
from lib.train.verdict import combine


def _clean(x):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def inspection(run) -> dict:
    """What the head's loss was computed on, its worst validation images and its confidently-wrong count,
    as the CLI's JSON names them (a head Keras refused: `unknown`, no images, null)."""
    used = run.loss_used
    return {
        "loss_used": used.label if used else "unknown",
        "loss_used_evidence": used.to_dict() if used else {"statement": "Keras refused this head: nothing ran."},
        "top_losses": [{"index": i, "loss": v} for i, v in run.top_losses],
        "confidently_wrong": run.confidently_wrong,
    }


def sweep_to_dict(sweep: SweepResult) -> dict:
    """Everything a report needs, JSON-ready (output arrays summarised, not dumped)."""
    runs = []
    for run in sweep.runs:
        verdict = combine(run, sweep)  # the table's verdict and the run's symptoms as one
        runs.append({
            "label": run.label,
            "config": run.config.to_dict(),
            "config_url": run.config.to_url(),
            "status": run.status,
            "diverged_epoch": run.diverged_epoch,
            "error": run.error,
            "verdict": verdict.to_dict(),
            "table_verdict": verdict.table.to_dict(),
            "diagnostics": list(verdict.symptoms),
            "history": run.history,
            "final": run.final,
            "outputs": {str(epoch): output_summary(out, run.config.activation, sweep.y_val, sweep.task)
                        for epoch, out in sorted(run.snapshots.items())},
            **inspection(run),
            "warnings": run.warnings,
            "notes": run.notes,
            "cut": run.cut,
            "seconds": round(run.seconds, 3),
            "epoch_seconds": run.epoch_seconds,  # one per history["epoch"]; wall-clock, so not deterministic
        })
    return _clean({
        "task": sweep.task, "dataset": sweep.dataset, "label_names": list(sweep.label_names), "unit": sweep.unit,
        "backbone": sweep.backbone, "input_size": sweep.input_size, "weights": sweep.weights,
        "epochs": sweep.epochs, "seed": sweep.seed, "batch_size": sweep.batch_size,
        "n_train": int(len(sweep.y_train)), "n_val": int(len(sweep.y_val)),
        "backend": sweep.backend, "keras_version": sweep.keras_version,
        "timing": sweep.timing, "notes": sweep.notes, "runs": runs,
    })


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) opens an address).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """Text a spreadsheet shows as text: a leading ' before a formula start (OWASP's CSV-injection advice)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _head_columns(config) -> dict:
    """The head's full settings as `head_<setting>` cells (every row, so a filtered sheet keeps them)."""
    cells = {}
    for key, value in config.to_dict().items():
        if key == "hidden":
            value = ";".join(f"{u}:{a}" for u, a in value)
        cells[f"head_{key}"] = spreadsheet_safe(value) if isinstance(value, str) else value
    return cells


def history_rows(sweep: SweepResult) -> list[dict]:
    """One row per run and epoch (the CSV download); text cells are spreadsheet-safe (a link sets names).

    `val_loss_on_predictions` (the loss recomputed on what predict() returns, measured once after
    training) fills the last epoch's row; earlier rows leave it empty.
    """
    rows = []
    for i, run in enumerate(sweep.runs):
        h = run.history
        label = spreadsheet_safe(run.label)
        head = _head_columns(run.config)
        epochs = h.get("epoch", [])
        for k, epoch in enumerate(epochs):
            row = {"run": i + 1, "label": label, "status": run.status, "epoch": epoch}
            row.update({key: vals[k] for key, vals in h.items() if key != "epoch"})
            row["val_loss_on_predictions"] = run.final.get("val_loss_on_predictions") if k == len(epochs) - 1 else None
            row.update(head)
            rows.append(row)
    return rows
