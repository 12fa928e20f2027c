"""One verdict per head after training: the pairing table's verdict and the run's symptoms, reconciled.

The table (`lib.heads.pairings`) says what a pairing does in general; `diagnostics` says what this run
showed. Shown side by side they contradicted each other (an OK badge beside "every prediction is
0.4224", a Mismatch badge beside "nothing suspicious", "Knob: learning_rate" for a ReLU output the
table already blames). Here they become one answer:

- the level is the worse of the table's and the symptoms' (the badge reflects what was measured);
- a symptom the table explains names the table's knob and says so (it never contradicts the table);
- a backbone with random weights is stated once and takes the blame for the symptoms it explains;
- the message says whether the run shows the table's problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.heads.pairings import LEVELS, PROBLEMS, Verdict, verdict_for
from lib.train.diagnostics import diagnose
from lib.train.trainer import RunResult, SweepResult

ANY_ERROR = "*error"  # any table code of level error explains the symptom

# symptom code -> table codes that explain it (first match in the table's own order wins)
EXPLAINS: dict[str, tuple[str, ...]] = {
    "refused": (ANY_ERROR,),
    "diverged": ("relu_ce", "linear_probabilities", "tanh_ce", "ce_for_regression"),
    "constant_output": ("softmax_one_unit", "ce_over_one_unit", "cce_multilabel", "sigmoid_regression",
                        "tanh_regression", "softmax_regression", "relu_regression", "relu_ce"),
    "saturated": ("relu_ce", "tanh_ce", "regression_loss_for_classes", "sigmoid_regression", "tanh_regression",
                  "softmax_regression", "linear_probabilities"),
    "clipped_outputs": ("linear_probabilities",),
    "flat_loss": ("ce_over_one_unit", "softmax_one_unit", "probabilities_as_logits", "relu_ce", "tanh_ce",
                  "relu_regression", "sigmoid_regression", "tanh_regression", "softmax_regression",
                  "regression_loss_for_classes"),
    "loss_hides_outputs": ("softmax_one_unit", "linear_probabilities", "softmax_with_bce", "sigmoid_with_cce",
                           "softmax_multilabel", "relu_ce", "tanh_ce", "probabilities_as_logits"),
    "sums_not_one": ("sigmoid_with_cce", "sigmoid_one_vs_rest", "relu_ce", "tanh_ce", "tanh_logits",
                     "linear_probabilities", "units_extra"),
    "majority_rate": (ANY_ERROR, "regression_loss_for_classes", "tanh_logits"),
    "labels_compete": ("softmax_multilabel",),
    "pinned_regression": ("sigmoid_regression", "tanh_regression", "softmax_regression", "relu_regression"),
    "dead_relu": ("relu_regression",),
    "zero_loss_moving": ("ce_over_one_unit",),
    "no_gradient": ("ce_over_one_unit", "softmax_one_unit", "relu_regression", "relu_ce", "sigmoid_regression",
                    "tanh_regression", "softmax_regression", "regression_loss_for_classes"),
}

# Symptoms that blame the head but that features carrying nothing produce by themselves.
BACKBONE_EXPLAINS = {
    "constant_output": "the constant output", "majority_rate": "accuracy at the majority rate",
    "saturated_at_start": "outputs pinned at a bound from the start", "saturated": "confidently wrong outputs",
    "flat_loss": "the flat loss", "no_gradient": "the missing gradient",
}
RANDOM_KNOB = "backbone weights (pick a backbone whose ImageNet weights are available offline)"


@dataclass(frozen=True)
class RunVerdict:
    """The one verdict on a trained head: its level (ok / warning / error, as the table's `Verdict`), one
    message, the reconciled symptoms (dicts: code, severity, message, knob, cause) and the knobs to turn.
    `table` is the pairing table's own verdict for this head and set-up."""

    level: str
    message: str
    symptoms: tuple[dict, ...]
    knobs: tuple[str, ...]
    table: Verdict
    backend: str

    def to_dict(self) -> dict:
        return {"level": self.level, "message": self.message, "symptoms": [dict(s) for s in self.symptoms],
                "knobs": list(self.knobs), "table_codes": list(self.table.codes), "backend": self.backend}


def pretrained(sweep: SweepResult) -> bool:
    """Whether the sweep's backbone carried ImageNet weights (SweepResult.weights is the status used)."""
    return sweep.weights.startswith("imagenet")


def table_verdict(run: RunResult, sweep: SweepResult) -> Verdict:
    """The pairing table's verdict, worded for this run's backend and set-up (frozen or not, pretrained or not)."""
    return verdict_for(run.config, sweep.n_outputs, sweep.backend, pretrained=pretrained(sweep))


def _explainer(code: str, table: Verdict) -> str:
    wanted = EXPLAINS.get(code, ())
    for t in table.codes:
        if PROBLEMS[t].level != "ok" and (t in wanted or (ANY_ERROR in wanted and PROBLEMS[t].level == "error")):
            return t
    return ""


def combine(run: RunResult, sweep: SweepResult) -> RunVerdict:
    """The table's verdict and the run's symptoms as one consistent verdict (see the module's docstring)."""
    table = table_verdict(run, sweep)
    raw = diagnose(run, sweep)
    symptoms: list[dict] = []
    blamed_on_backbone: list[str] = []
    for s in raw:
        cause = _explainer(s["code"], table)
        if cause and s["code"] != "refused":
            problem = PROBLEMS[cause]
            text = problem.text(sweep.backend)[0]
            symptoms.append({**s, "message": f"{s['message']} The cause is the pairing: {text}",
                             "knob": problem.knob, "cause": cause})
        elif cause:
            symptoms.append({**s, "cause": cause})
        elif not pretrained(sweep) and s["code"] in BACKBONE_EXPLAINS:
            blamed_on_backbone.append(BACKBONE_EXPLAINS[s["code"]])
        elif s["code"] == "majority_rate" and any(o["cause"] == "" for o in symptoms):
            first = next(o for o in symptoms if o["cause"] == "")  # a consequence of the symptom above it
            symptoms.append({**s, "message": f"{s['message']} It follows from the {first['code'].replace('_', ' ')} above.",
                             "knob": first["knob"], "cause": ""})
        else:
            symptoms.append({**s, "cause": ""})
    if not pretrained(sweep):
        what = (f"{_join(blamed_on_backbone)} come{'s' if len(blamed_on_backbone) == 1 else ''} from the backbone, "
                "not from the head's settings" if blamed_on_backbone else
                "what this head learns says little about the head's settings")
        symptoms.insert(0, {"code": "random_backbone", "severity": "warning",
                            "message": "The backbone has random weights: its features carry almost "
                                       f"nothing about the images, so {what}.",
                            "knob": RANDOM_KNOB, "cause": "backbone"})

    level = max([table.level, *(s["severity"] for s in symptoms)], key=LEVELS.index)
    explained = [s for s in symptoms if s["cause"] not in ("", "backbone")]
    others = [s for s in symptoms if s["cause"] in ("", "backbone")]
    if level == "ok":
        message = f"{table.message} The run agrees: nothing suspicious in what predict() returned."
    elif table.level != "ok":
        shown = (f"This run shows it: {_first_sentence(explained[0]['message'])}" if explained else
                 "Nothing in this run's numbers shows it, which does not make the pairing right.")
        message = f"{table.message} {shown}"
        if others:
            message += f" Also: {_first_sentence(others[0]['message'])}"
    else:
        worst = next(s for s in symptoms if s["severity"] == level)
        message = worst["message"]
    knobs = _unique([s["knob"] for s in sorted(symptoms, key=lambda s: -LEVELS.index(s["severity"]))]
                    + [k for k in table.knobs if k != "—"])
    return RunVerdict(level=level, message=message, symptoms=tuple(symptoms), knobs=tuple(knobs), table=table,
                      backend=sweep.backend)


def _first_sentence(text: str) -> str:
    """The symptom's own finding, without the cause sentence combine() appended."""
    return text.split(" The cause is the pairing: ")[0]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out
