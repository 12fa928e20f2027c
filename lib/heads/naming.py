"""Names that tell heads apart: what differs from the other heads of the same comparison.

A class reads "zeros", "zeros + hidden 8 relu" and "random_normal(stddev=10)" on the cards, legends,
report, CSV and JSON, not four times "sigmoid + BCE". A name the user gave always wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields

from lib.heads.config import HeadConfig

# The pairing (activation, units, loss, from_logits) reads as one phrase, e.g. "softmax×2 + CCE".
PAIRING_FIELDS = ("activation", "units", "loss", "from_logits")
# Never part of a name: the task is the same for every head of a comparison; the name is the user's.
SKIPPED_FIELDS = ("task", "name")
# Settings left out of a name at their default value ("zeros", not "zeros · no hidden layer"): their
# absence reads as the default. Initializer, pooling, optimizer and learning rate are always named.
QUIET_AT_DEFAULT = ("hidden", "dropout", "bias_initializer", "labels", "fine_tune_epochs",
                    "fine_tune_learning_rate")
DEFAULTS = {f.name: f.default for f in fields(HeadConfig) if f.default is not MISSING}
DEFAULTS["hidden"] = ()

POOLING_NAMES = {"gap": "GAP", "flatten": "Flatten", "max": "Max pooling"}
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}


def _hidden(value: tuple) -> str:
    if not value:
        return "no hidden layer"
    return "hidden " + ", ".join(f"{units} {act}" for units, act in value)


def _unfrozen(value: int) -> str:
    return "frozen base" if value == 0 else f"top {value} layers trained"


# How each setting reads in a name; any other field reads "field=value" (so a new setting is named
# too, before anyone writes it a phrase).
FORMATTERS: dict[str, Callable[[object], str]] = {
    "pooling": lambda v: POOLING_NAMES.get(str(v), str(v)),
    "hidden": _hidden,
    "kernel_initializer": str,
    "bias_initializer": lambda v: f"bias {v}",
    "dropout": lambda v: "no dropout" if v == 0 else f"dropout {v:g}",
    "optimizer": lambda v: OPTIMIZER_NAMES.get(str(v), str(v)),
    "learning_rate": lambda v: f"lr {v:g}",
    "unfrozen": _unfrozen,
    "labels": lambda v: f"labels {v}",
    "fine_tune_epochs": lambda v: "one phase" if v == 0 else f"then {v} epochs fine-tuned",
    "fine_tune_learning_rate": lambda v: f"fine-tuning lr {v:g}",
}


def _phrase(name: str, value: object) -> str:
    fmt = FORMATTERS.get(name)
    if fmt is not None:
        return fmt(value)
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def distinct_labels(configs: Sequence[HeadConfig]) -> list[str]:
    """One name per head: its own name if it has one, else the settings in which the heads differ.

    The pairing comes first when it differs (or when nothing differs), then every other differing
    setting in the dataclass's order. Heads that are still alike (identical settings, or a name
    given twice) are numbered "#1", "#2" by position, so no two names in a comparison are equal.
    """
    configs = list(configs)
    differing = [f.name for f in fields(HeadConfig)
                 if f.name not in SKIPPED_FIELDS and len({getattr(c, f.name) for c in configs}) > 1]
    pairing_differs = any(name in PAIRING_FIELDS for name in differing)
    others = [name for name in differing if name not in PAIRING_FIELDS]

    def label(c: HeadConfig, terse: bool) -> str:
        parts = [c.pairing()] if pairing_differs or not others else []
        parts += [_phrase(name, getattr(c, name)) for name in others
                  if not (terse and name in QUIET_AT_DEFAULT and getattr(c, name) == DEFAULTS[name])]
        return " · ".join(parts)

    terse = [c.name or label(c, terse=True) for c in configs]
    # Saying a default aloud only where leaving it out leaves a name empty or equal to another's.
    labels = [c.name or (t if t and terse.count(t) == 1 else label(c, terse=False))
              for c, t in zip(configs, terse, strict=True)]
    return [f"{text} #{i + 1}" if labels.count(text) > 1 else text for i, text in enumerate(labels)]
