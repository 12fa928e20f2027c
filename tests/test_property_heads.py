"""Property tests: every head the editor can produce either is refused with a ConfigError or trains to
a run the app can show (ok / diverged / error with a message) and serialise to strict JSON."""

from __future__ import annotations

import json

import pytest
from conftest import toy_data
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lib.common.errors import ConfigError
from lib.data.taskdata import TASKS
from lib.heads.config import (
    ACTIVATIONS,
    BIAS_INITIALIZERS,
    HIDDEN_ACTIVATIONS,
    KERNEL_INITIALIZERS,
    LABEL_FORMATS,
    LOSSES,
    OPTIMIZERS,
    POOLINGS,
    HeadConfig,
    format_initializer,
    parse_head_string,
    parse_hidden,
)
from lib.report.results import sweep_to_dict
from lib.train.diagnostics import annotate
from lib.train.trainer import train

FAST = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Values the editor's number inputs accept (they have no bounds for initializer parameters).
EXTREME = [0.0, 1e-6, 0.05, 1.0, -1.0, 10.0, 1e6, -1e6]
init_param = st.one_of(st.sampled_from(EXTREME), st.floats(-1e6, 1e6, allow_nan=False))
units = st.one_of(st.none(), st.sampled_from([1, 2, 3, 4, 4096]), st.integers(1, 4096))
learning_rate = st.one_of(st.sampled_from([1e-6, 1e-3, 1.0, 10.0]), st.floats(1e-6, 10.0))
dropout = st.sampled_from([round(0.05 * i, 2) for i in range(19)])  # the slider: 0–0.9 in 0.05 steps
hidden_layer = st.tuples(st.one_of(st.sampled_from([1, 4096]), st.integers(1, 256)), st.sampled_from(HIDDEN_ACTIVATIONS))
# The hidden-layers box is free text: well-formed specs, and anything a user might type.
hidden_text = st.one_of(
    st.lists(hidden_layer, max_size=2).map(lambda ls: ";".join(f"{u}:{a}" for u, a in ls)),
    st.text(max_size=12),
)


@st.composite
def initializer(draw, table):
    name = draw(st.sampled_from(list(table)))
    return name, {p: draw(init_param) for p in table[name]}


@st.composite
def editor_fields(draw, task: str, unfrozen=None):
    """What head_editor reads from its widgets (before building the HeadConfig)."""
    return dict(
        task=task, name=draw(st.text(max_size=8)).strip(), units=draw(units),
        activation=draw(st.sampled_from(ACTIVATIONS)), loss=draw(st.sampled_from(LOSSES)),
        from_logits=draw(st.booleans()), labels=draw(st.sampled_from(LABEL_FORMATS)),
        kernel=draw(initializer(KERNEL_INITIALIZERS)), bias=draw(initializer(BIAS_INITIALIZERS)),
        hidden=draw(hidden_text), dropout=draw(dropout), pooling=draw(st.sampled_from(POOLINGS)),
        optimizer=draw(st.sampled_from(OPTIMIZERS)), learning_rate=draw(learning_rate),
        unfrozen=draw(unfrozen) if unfrozen is not None else 0,
    )


def build_like_the_editor(f: dict) -> HeadConfig | None:
    """HeadConfig exactly as ui.components.head_editor builds it; None when it is refused (ConfigError)."""
    try:
        return HeadConfig(
            task=f["task"], name=f["name"], units=f["units"], activation=f["activation"], loss=f["loss"],
            from_logits=f["from_logits"], labels=f["labels"],
            kernel_initializer=format_initializer(*f["kernel"], KERNEL_INITIALIZERS),
            bias_initializer=format_initializer(*f["bias"], BIAS_INITIALIZERS),
            hidden=parse_hidden(f["hidden"]), dropout=f["dropout"], pooling=f["pooling"],
            optimizer=f["optimizer"], learning_rate=f["learning_rate"], unfrozen=f["unfrozen"])
    except ConfigError as e:  # anything else propagates and fails the test
        assert str(e), "a ConfigError must say what is wrong"
        return None


def check_sweep(configs: list[HeadConfig], data, backbone) -> None:
    sweep = train(configs, data, epochs=1, seed=0, loaded=backbone)
    assert len(sweep.runs) == len(configs)
    for run, config in zip(sweep.runs, configs):
        assert run.config == config
        assert run.status in {"ok", "diverged", "error"}, run.status
        if run.status == "error":
            assert run.error.strip(), f"{config}: status error without a message"
        if run.status == "diverged":
            assert run.diverged_epoch == 1
    report = sweep_to_dict(annotate(sweep))
    text = json.dumps(report, allow_nan=False)  # strict JSON: NaN/inf must have become null
    assert json.loads(text)["runs"][0]["status"] in {"ok", "diverged", "error"}
    for run in sweep.runs:
        assert all(isinstance(d["message"], str) and d["message"] for d in run.diagnostics)


@pytest.mark.parametrize("task", TASKS)
@settings(max_examples=3, **FAST)
@given(data=st.data())
def test_any_editor_head_is_refused_cleanly_or_trains(task, data, toy, tiny_backbone):
    fields = data.draw(st.lists(editor_fields(task), min_size=1, max_size=2), label="heads")
    configs = [c for c in map(build_like_the_editor, fields) if c is not None]
    assume(configs)
    check_sweep(configs, toy(task), tiny_backbone)


@settings(max_examples=40, **FAST)
@given(fields=editor_fields("binary", unfrozen=st.integers(0, 2000)),
       task=st.sampled_from(TASKS))
def test_building_any_editor_head_raises_only_config_errors(fields, task):
    build_like_the_editor({**fields, "task": task})  # no training: cheap, so the whole unfrozen range


_SMALL: dict[str, object] = {}


@settings(max_examples=2, **FAST)
@given(data=st.data())
def test_unfrozen_backbone_heads_train_on_small_data(data, tiny_backbone):
    """Unfreezing clones and traces backbone layers (seconds each), so: few examples, 24 images."""
    task = data.draw(st.sampled_from(TASKS), label="task")
    fields = data.draw(editor_fields(task, unfrozen=st.one_of(st.sampled_from([1, 30]), st.integers(1, 60))),
                       label="head")
    config = build_like_the_editor(fields)
    assume(config is not None)
    small = _SMALL.setdefault(task, toy_data(task, n=24))
    check_sweep([config], small, tiny_backbone)


HEAD_KEYS = ["units", "activation", "loss", "from_logits", "labels", "kernel_initializer", "bias_initializer",
             "hidden", "dropout", "pooling", "optimizer", "learning_rate", "unfrozen", "name", "task", "bogus"]
head_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.tuples(st.sampled_from(HEAD_KEYS), st.text(max_size=15)), max_size=5).map(
        lambda kv: ",".join(f"{k}={v}" for k, v in kv)),
    st.lists(st.tuples(st.sampled_from(HEAD_KEYS),
                       st.sampled_from(["", "nan", "inf", "-1", "1e400", "9" * 5000, "0", "4097", "true", "x",
                                        "random_normal(stddev=nan)", "constant(value=1,value=2)", "8:relu;;",
                                        "1:relu;2:relu;3:relu;4:relu;5:relu", "ones(", "zeros)", "()"])),
             max_size=4).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)),
)


@settings(max_examples=300, **FAST)
@given(task=st.one_of(st.sampled_from(TASKS), st.text(max_size=10)), text=head_text)
def test_head_strings_from_random_text_raise_only_config_errors(task, text):
    try:
        config = parse_head_string(task, text)
    except ConfigError as e:
        assert str(e)
        return
    assert config.task == task
    assert HeadConfig.from_url(config.to_url()) == config
