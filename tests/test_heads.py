import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.common.errors import ConfigError
from lib.data.taskdata import TASKS
from lib.heads.config import (
    ACTIVATIONS,
    LABEL_FORMATS,
    LOSSES,
    OPTIMIZERS,
    POOLINGS,
    HeadConfig,
    default_head,
    parse_head_string,
)

initializers = st.sampled_from(["glorot_uniform", "he_normal", "zeros", "random_normal(stddev=10)",
                                "random_uniform(minval=-2;maxval=3)", "constant(value=0.5)", "orthogonal(gain=2)"])
configs = st.builds(
    HeadConfig,
    task=st.sampled_from(TASKS),
    units=st.none() | st.integers(1, 64),
    activation=st.sampled_from(ACTIVATIONS),
    loss=st.sampled_from(LOSSES),
    from_logits=st.booleans(),
    labels=st.sampled_from(LABEL_FORMATS),
    kernel_initializer=initializers,
    bias_initializer=st.sampled_from(["zeros", "log_prior", "constant(value=-3)", "random_normal(stddev=2)"]),
    hidden=st.lists(st.tuples(st.integers(1, 256), st.sampled_from(["relu", "tanh", "linear"])), max_size=3).map(tuple),
    dropout=st.floats(0, 0.9),
    pooling=st.sampled_from(POOLINGS),
    optimizer=st.sampled_from(OPTIMIZERS),
    learning_rate=st.floats(1e-6, 10),
    unfrozen=st.integers(0, 200),
    name=st.text(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(configs)
def test_config_round_trips_through_dict_and_url(config):
    assert HeadConfig.from_dict(config.to_dict()) == config
    assert HeadConfig.from_url(config.to_url()) == config


def test_url_is_short_and_url_safe():
    url = default_head("binary", activation="softmax", units=1).to_url()
    assert len(url) < 120
    assert all(ch.isalnum() or ch in "-_" for ch in url)


def test_initializer_parameters_are_normalised():
    a = HeadConfig(kernel_initializer="random_normal( stddev = 10 )")
    b = HeadConfig(kernel_initializer="random_normal(mean=0;stddev=10)")
    assert a == b
    assert a.kernel_init() == ("random_normal", {"mean": 0.0, "stddev": 10.0})


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"activation": "softmaxx"}, "unknown activation 'softmaxx'"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"units": 0}, "units must be a whole number from 1"),
    ({"units": 10**6}, "units must be a whole number from 1"),
    ({"learning_rate": -1.0}, "learning_rate must be a number"),
    ({"learning_rate": 1e9}, "learning_rate must be a number"),
    ({"learning_rate": float("nan")}, "learning_rate must be a number"),
    ({"kernel_initializer": "random_normal(sigma=1)"}, "initializer random_normal has mean, stddev"),
    ({"kernel_initializer": "zeros(value=1)"}, "initializer zeros has no parameters"),
    ({"bias_initializer": "log_prior(x=1)"}, "initializer log_prior has no parameters"),
    ({"hidden": "abc"}, "write units:activation"),
    ({"hidden": "16:softmax"}, "unknown hidden layer activation"),
    ({"dropout": 1.5}, "dropout must be between 0 and 0.95"),
])
def test_bad_settings_name_what_is_wrong(kwargs, fragment):
    with pytest.raises(ConfigError) as e:
        HeadConfig(**kwargs)
    assert fragment in str(e.value)


def test_head_string_defaults_follow_the_task():
    h = parse_head_string("multiclass", "")
    assert (h.activation, h.loss, h.units) == ("softmax", "sparse_categorical_crossentropy", None)
    h = parse_head_string("binary", "units=1,activation=softmax,kernel_initializer=random_normal(mean=0,stddev=3)")
    assert h.units == 1 and h.activation == "softmax" and h.loss == "binary_crossentropy"
    assert h.kernel_init()[1]["stddev"] == 3.0
    h = parse_head_string("regression", "hidden=64:relu+32:tanh,from_logits=no,unfrozen=5")
    assert h.hidden == ((64, "relu"), (32, "tanh")) and h.from_logits is False and h.unfrozen == 5


@pytest.mark.parametrize(("spec", "fragment"), [
    ("units=two", "units must be a whole number"),
    ("colour=red", "unknown head setting(s): colour"),
    ("activation", "needs the form key=value"),
    ("from_logits=maybe", "from_logits must be true or false"),
    ("task=binary", "set the task with --task"),
])
def test_bad_head_strings(spec, fragment):
    with pytest.raises(ConfigError) as e:
        parse_head_string("binary", spec)
    assert fragment in str(e.value)


@pytest.mark.parametrize("bad", ["", "!!!", "eJzz", "x" * 5000])
def test_damaged_url_is_refused_with_a_message(bad):
    with pytest.raises(ConfigError):
        HeadConfig.from_url(bad)
