"""Head configurations: one frozen dataclass, validated, that round-trips to a dict and a URL string."""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from dataclasses import asdict, dataclass, field, fields, replace

from lib.common.errors import ConfigError
from lib.common.text import clean_name
from lib.data.taskdata import TASKS

ACTIVATIONS = ("softmax", "sigmoid", "linear", "relu", "tanh")
HIDDEN_ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid", "gelu", "elu")
CE_LOSSES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy")
REGRESSION_LOSSES = ("mse", "mae", "huber")
LOSSES = CE_LOSSES + REGRESSION_LOSSES
LABEL_FORMATS = ("auto", "integer", "one_hot")
POOLINGS = ("gap", "flatten", "max")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")

# Initializer name -> its numeric parameters and their defaults (Keras names and meanings).
KERNEL_INITIALIZERS: dict[str, dict[str, float]] = {
    "glorot_uniform": {},
    "glorot_normal": {},
    "he_normal": {},
    "he_uniform": {},
    "lecun_normal": {},
    "lecun_uniform": {},
    "orthogonal": {"gain": 1.0},
    "random_normal": {"mean": 0.0, "stddev": 0.05},
    "random_uniform": {"minval": -0.05, "maxval": 0.05},
    "truncated_normal": {"mean": 0.0, "stddev": 0.05},
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.0},
}
# "log_prior" sets each output's bias to log(p/(1-p)) of its training label frequency, so an
# imbalanced binary/multilabel head starts out predicting the base rate instead of 0.5.
BIAS_INITIALIZERS: dict[str, dict[str, float]] = {
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.0},
    "random_normal": {"mean": 0.0, "stddev": 0.05},
    "log_prior": {},
}

MAX_UNITS = 4096
MAX_HIDDEN_LAYERS = 4
MAX_UNFROZEN = 2000
MAX_FINE_TUNE_EPOCHS = 100
# The Keras transfer-learning guide's fine-tuning rate (Adam 1e-5): low, so the pretrained weights of the
# unfrozen layers move only a little away from what phase 1's head was trained on.
FINE_TUNE_LEARNING_RATE = 1e-5
MAX_LEARNING_RATE = 10.0
MAX_NAME = 80

_INIT_RE = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


def parse_initializer(spec: str, table: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    """Split 'random_normal(stddev=10)' into ('random_normal', {'mean': 0.0, 'stddev': 10.0})."""
    m = _INIT_RE.match(spec or "")
    if not m or m.group(1) not in table:
        raise ConfigError(
            f"unknown initializer {short(spec)}; choose one of {', '.join(table)} "
            "(parameters in brackets, e.g. random_normal(stddev=0.5))"
        )
    name, args = m.group(1), m.group(2)
    params = dict(table[name])
    for part in filter(None, (a.strip() for a in (args or "").split(";" if ";" in (args or "") else ","))):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in params:
            allowed = ", ".join(params) or "no parameters"
            raise ConfigError(f"initializer {name} has {allowed}; got {short(key)}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ConfigError(f"initializer parameter {key} must be a number, got {short(value)}") from None
        if not math.isfinite(params[key]):
            raise ConfigError(f"initializer parameter {key} must be finite")
    return name, params


def format_initializer(name: str, params: dict[str, float], table: dict[str, dict[str, float]]) -> str:
    """The canonical string for an initializer: parameters only where they differ from default."""
    changed = {k: v for k, v in params.items() if table[name].get(k) != v}
    if not changed:
        return name
    return f"{name}({';'.join(f'{k}={v:g}' for k, v in changed.items())})"


def parse_hidden(spec: str | tuple | list) -> tuple[tuple[int, str], ...]:
    """'128:relu;64:tanh' ('+' works too), or a sequence of (units, activation) pairs or such strings."""
    if isinstance(spec, (tuple, list)):
        try:
            parts = [p if isinstance(p, str) else f"{p[0]}:{p[1]}" for p in spec]
        except (TypeError, IndexError, KeyError):
            raise ConfigError(f"hidden layers {short(spec)}: write units:activation pairs, e.g. 128:relu") from None
    elif isinstance(spec, str) or spec is None:
        parts = re.split(r"[;+]", spec or "")
    else:
        raise ConfigError(f"hidden layers {short(spec)}: write units:activation, e.g. 128:relu;64:relu")
    layers = []
    for part in filter(None, (p.strip() for p in parts)):
        units_s, _, act = part.partition(":")
        try:
            units = int(units_s)
        except ValueError:
            raise ConfigError(f"hidden layer {short(part)}: write units:activation, e.g. 128:relu") from None
        layers.append((units, (act or "relu").strip()))
    return tuple(layers)


@dataclass(frozen=True)
class HeadConfig:
    """Everything that defines one head on top of a backbone.

    units=None means the task's natural count (1 for binary and regression, else the number of
    classes or labels). labels='auto' feeds targets in the format the loss expects; 'integer' or
    'one_hot' force a format, which is how a label/loss mismatch is reproduced.
    """

    task: str = "binary"
    units: int | None = None
    activation: str = "sigmoid"
    loss: str = "binary_crossentropy"
    from_logits: bool = False
    labels: str = "auto"
    kernel_initializer: str = "glorot_uniform"
    bias_initializer: str = "zeros"
    hidden: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    dropout: float = 0.0
    pooling: str = "gap"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    unfrozen: int = 0
    # Two phases (the Keras guide's recipe) when fine_tune_epochs > 0: the head first trains on the frozen
    # base for the sweep's epochs, then the top `unfrozen` layers join it for fine_tune_epochs more, with
    # a new optimizer at fine_tune_learning_rate and their BatchNorm layers kept in inference mode.
    # With 0 (one phase), `unfrozen` layers train from the first epoch with the randomly started head.
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = FINE_TUNE_LEARNING_RATE
    name: str = ""

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("labels", self.labels, LABEL_FORMATS)
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.units is not None:
            _check_int("units", self.units, 1, MAX_UNITS)
        _check_int("unfrozen", self.unfrozen, 0, MAX_UNFROZEN)
        _check_int("fine_tune_epochs", self.fine_tune_epochs, 0, MAX_FINE_TUNE_EPOCHS)
        if self.fine_tune_epochs and not self.unfrozen:
            raise ConfigError("fine_tune_epochs needs unfrozen > 0: phase 2 unfreezes the top `unfrozen` backbone "
                              "layers (set unfrozen, or fine_tune_epochs=0 for a frozen head)")
        ft_lr = self.fine_tune_learning_rate
        if not isinstance(ft_lr, (int, float)) or isinstance(ft_lr, bool) or not math.isfinite(ft_lr) \
                or not 0 < ft_lr <= MAX_LEARNING_RATE:
            raise ConfigError(f"fine_tune_learning_rate must be a number in (0, {MAX_LEARNING_RATE:g}]; "
                              f"got {short(ft_lr)}")
        if not isinstance(self.from_logits, bool):
            raise ConfigError("from_logits must be true or false")
        lr = self.learning_rate
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LEARNING_RATE:
            raise ConfigError(f"learning_rate must be a number in (0, {MAX_LEARNING_RATE:g}]; got {short(lr)}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout <= 0.95:
            raise ConfigError(f"dropout must be between 0 and 0.95; got {short(self.dropout)}")
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME:
            raise ConfigError(f"a head's name is text of at most {MAX_NAME} characters")
        # One plain line (links can set it): no newlines or right-to-left overrides in legends and code.
        object.__setattr__(self, "name", clean_name(self.name))
        # Normalise the initializer strings so equal configs compare (and hash) equal.
        k_name, k_params = parse_initializer(self.kernel_initializer, KERNEL_INITIALIZERS)
        b_name, b_params = parse_initializer(self.bias_initializer, BIAS_INITIALIZERS)
        object.__setattr__(self, "kernel_initializer", format_initializer(k_name, k_params, KERNEL_INITIALIZERS))
        object.__setattr__(self, "bias_initializer", format_initializer(b_name, b_params, BIAS_INITIALIZERS))
        hidden = parse_hidden(self.hidden)
        if len(hidden) > MAX_HIDDEN_LAYERS:
            raise ConfigError(f"at most {MAX_HIDDEN_LAYERS} hidden layers; got {len(hidden)}")
        for units, act in hidden:
            _check_int("hidden layer units", units, 1, MAX_UNITS)
            _check_choice("hidden layer activation", act, HIDDEN_ACTIVATIONS)
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "learning_rate", float(lr))
        object.__setattr__(self, "fine_tune_learning_rate", float(ft_lr))
        object.__setattr__(self, "dropout", float(self.dropout))

    # -- derived views -------------------------------------------------------------------
    def resolved_units(self, n_outputs: int) -> int:
        """Units actually built: the explicit count, or the task's natural count."""
        return self.units if self.units is not None else n_outputs

    def kernel_init(self) -> tuple[str, dict[str, float]]:
        return parse_initializer(self.kernel_initializer, KERNEL_INITIALIZERS)

    def bias_init(self) -> tuple[str, dict[str, float]]:
        return parse_initializer(self.bias_initializer, BIAS_INITIALIZERS)

    @property
    def two_phase(self) -> bool:
        """Frozen base first, then the top `unfrozen` layers fine-tuned (fine_tune_epochs > 0)."""
        return self.fine_tune_epochs > 0

    def phase1(self) -> HeadConfig:
        """The head of phase 1: this head on the frozen base (itself when it has one phase)."""
        return self.with_(unfrozen=0, fine_tune_epochs=0) if self.two_phase else self

    def phase2(self) -> HeadConfig:
        """What phase 2 trains: the top `unfrozen` layers plus the head, at the fine-tuning learning rate."""
        return self.with_(fine_tune_epochs=0, learning_rate=self.fine_tune_learning_rate)

    def total_epochs(self, epochs: int) -> int:
        """Epochs this head trains in a sweep of `epochs`: phase 1's plus phase 2's."""
        return epochs + self.fine_tune_epochs

    def label(self) -> str:
        """A short human name for one head alone: the given name, else its pairing. Heads of one
        comparison are named by what differs between them: `lib.heads.naming.distinct_labels`."""
        return self.name or self.pairing()

    def pairing(self) -> str:
        """The pairing as one phrase: activation, units when set, loss, '(logits)' when from_logits."""
        units = "" if self.units is None else f"×{self.units}"
        logits = " (logits)" if self.from_logits else ""
        return f"{self.activation}{units} + {LOSS_SHORT[self.loss]}{logits}"

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        d = asdict(self)
        d["hidden"] = [list(h) for h in self.hidden]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        """Build from a dict; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            names = ", ".join(map(str, unknown))
            names = names if len(names) <= 60 else f"{names[:60]}…"
            raise ConfigError(f"unknown head setting(s): {names}; "
                              f"known: {', '.join(sorted(known))}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = parse_hidden(d["hidden"])
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"bad head setting: {e}") from None

    def to_url(self) -> str:
        """A short URL-safe string holding only the fields that differ from the defaults."""
        default = HeadConfig(task=self.task).to_dict()
        diff = {k: v for k, v in self.to_dict().items() if k == "task" or v != default[k]}
        raw = json.dumps(diff, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")

    @classmethod
    def from_url(cls, s: str) -> HeadConfig:
        """Inverse of to_url; anything malformed raises ConfigError."""
        if len(s) > 4000:
            raise ConfigError("head link is too long to be a Head Lab configuration")
        try:
            raw = zlib.decompress(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), bufsize=65536)
            d = json.loads(raw)
        except Exception:
            raise ConfigError("head link is damaged (cannot decode it); use defaults or copy the link again") from None
        if not isinstance(d, dict):
            raise ConfigError("head link does not hold a configuration")
        return cls.from_dict(d)

    def with_(self, **changes) -> HeadConfig:
        """A copy with some fields changed (validated like any new config)."""
        return replace(self, **changes)


LOSS_SHORT = {
    "binary_crossentropy": "BCE",
    "categorical_crossentropy": "CCE",
    "sparse_categorical_crossentropy": "sparse CCE",
    "mse": "MSE",
    "mae": "MAE",
    "huber": "Huber",
}

# The textbook head per task; omitted CLI/URL keys fall back to these.
TASK_DEFAULTS: dict[str, dict] = {
    "binary": {"activation": "sigmoid", "loss": "binary_crossentropy"},
    "multiclass": {"activation": "softmax", "loss": "sparse_categorical_crossentropy"},
    "multilabel": {"activation": "sigmoid", "loss": "binary_crossentropy"},
    "regression": {"activation": "linear", "loss": "mse"},
}


def default_head(task: str, **overrides) -> HeadConfig:
    """The textbook head for a task, with any fields overridden."""
    _check_choice("task", task, TASKS)
    return HeadConfig(task=task, **{**TASK_DEFAULTS[task], **overrides})


_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_INT_FIELDS = {"units", "unfrozen", "fine_tune_epochs"}
_FLOAT_FIELDS = {"dropout", "learning_rate", "fine_tune_learning_rate"}


def parse_head_string(task: str, spec: str) -> HeadConfig:
    """Parse the CLI form 'units=1,activation=sigmoid,loss=binary_crossentropy,hidden=128:relu'.

    Commas inside brackets belong to an initializer's parameters.
    """
    d: dict = {}
    for part in _split_top_level(spec):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise ConfigError(f"head setting {short(part)} needs the form key=value")
        if key == "task":
            raise ConfigError("set the task with --task, not inside --head")
        if key in _INT_FIELDS:
            if value.lower() in ("", "auto", "none") and key == "units":
                d[key] = None
                continue
            try:
                d[key] = int(value)
            except ValueError:
                raise ConfigError(f"{key} must be a whole number, got {short(value)}") from None
        elif key in _FLOAT_FIELDS:
            try:
                d[key] = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {short(value)}") from None
        elif key == "from_logits":
            if value.lower() not in _BOOL:
                raise ConfigError(f"from_logits must be true or false, got {short(value)}")
            d[key] = _BOOL[value.lower()]
        else:
            d[key] = value
    _check_choice("task", task, TASKS)
    base = {"task": task, **TASK_DEFAULTS[task]}
    return HeadConfig.from_dict({**base, **d})


def _split_top_level(spec: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in spec:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def short(value, limit: int = 60) -> str:
    """repr() cut to a readable length: error messages must not echo a 100 kB input back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {short(value)}; choose one of {', '.join(choices)}")


def _check_int(what: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{what} must be a whole number from {lo} to {hi}; got {short(value)}")
