"""Experiments round-trip through links; odd links fall back with a notice instead of failing."""

import pytest

from lib.experiment import MAX_HEADS, Experiment, from_query
from lib.heads.config import default_head
from lib.train.seeds import MAX_SEEDS


def test_seeds_round_trip_and_stay_bounded():
    exp = Experiment(seeds=3, seed=5)
    assert exp.to_query()["seeds"] == "3" and "seeds" not in Experiment().to_query()  # old links unchanged
    back, notices = from_query(exp.to_query())
    assert back.seeds == 3 and notices == []
    back, notices = from_query({"seeds": "50"})
    assert back.seeds == MAX_SEEDS and any("outside 1–5" in n for n in notices)


def test_query_round_trip_keeps_everything():
    exp = Experiment(task="multilabel", dataset="shapes", backbone="mobilenet_v2", input_size=64, epochs=7, seed=42,
                     heads=(default_head("multilabel"), default_head("multilabel", activation="softmax", dropout=0.2)))
    back, notices = from_query(exp.to_query())
    assert back == exp and notices == []


@pytest.mark.parametrize(("params", "fragment"), [
    ({"task": "ternary"}, "Unknown task 'ternary'"),
    ({"task": "multilabel", "ds": "fashion"}, "not a sample dataset with a multilabel task"),
    ({"bb": "alexnet"}, "Unknown backbone 'alexnet'"),
    ({"epochs": "1000000"}, "outside 1–200; using 200"),
    ({"epochs": "-3"}, "outside 1–200; using 1"),
    ({"seed": "banana"}, "'seed=banana' is not a whole number"),
    ({"size": "100000"}, "outside"),
    ({"h": ["not-a-head"]}, "Head 1 in the link could not be read"),
    ({"task": "binary", "h": [default_head("regression").to_url()]}, "is for a regression task"),
    ({"h": [default_head("binary").to_url()] * (MAX_HEADS + 2)}, f"keeping the first {MAX_HEADS}"),
    ({"h": ["x" * 9000]}, "too long"),
])
def test_bad_links_fall_back_with_a_notice(params, fragment):
    exp, notices = from_query(params)
    assert any(fragment in n for n in notices), notices
    assert 1 <= len(exp.heads) <= MAX_HEADS and 1 <= exp.epochs <= 200
    assert all(h.task == exp.task for h in exp.heads)
