"""Heads of one comparison are named by what differs between them, everywhere a run's name appears."""

from __future__ import annotations

import json

import pytest

from lib.heads.config import HeadConfig, parse_head_string
from lib.heads.naming import distinct_labels
from lib.lessons import LESSONS
from lib.report.base import run_names
from lib.report.html_report import html_report
from lib.report.results import history_rows, sweep_to_dict
from lib.serve.sweep_cache import for_requester
from lib.train.trainer import train


def _h(spec: str, task: str = "binary") -> HeadConfig:
    return parse_head_string(task, spec)


def test_heads_alike_but_for_their_initializer_are_named_by_it():
    heads = [_h(""), _h("kernel_initializer=zeros"), _h("kernel_initializer=random_normal(stddev=10)"),
             _h("kernel_initializer=zeros,hidden=64:relu")]
    assert distinct_labels(heads) == ["glorot_uniform", "zeros", "random_normal(stddev=10)", "zeros · hidden 64 relu"]


def test_pooling_heads_are_named_by_their_pooling():
    assert distinct_labels([_h("pooling=gap"), _h("pooling=flatten"), _h("pooling=max")]) == \
        ["GAP", "Flatten", "Max pooling"]


def test_a_default_is_named_where_leaving_it_out_would_leave_no_name():
    assert distinct_labels([_h("hidden=8:relu"), _h("")]) == ["hidden 8 relu", "no hidden layer"]


def test_the_pairing_leads_when_it_differs_and_other_differences_follow():
    names = distinct_labels([_h("learning_rate=0.01"), _h("activation=softmax,units=2,learning_rate=0.1")])
    assert names == ["sigmoid + BCE · lr 0.01", "softmax×2 + BCE · lr 0.1"]


def test_given_names_win_and_identical_heads_are_numbered():
    assert distinct_labels([_h("name=mine"), _h("kernel_initializer=zeros")]) == ["mine", "zeros"]
    assert distinct_labels([_h(""), _h("")]) == ["sigmoid + BCE #1", "sigmoid + BCE #2"]
    assert distinct_labels([_h("name=a"), _h("name=a,learning_rate=0.1")]) == ["a #1", "a #2"]
    assert distinct_labels([]) == []


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.id)
def test_every_lessons_heads_have_different_names(lesson):
    names = distinct_labels(lesson.experiment.heads)
    assert len(set(names)) == len(names) and all(names)
    assert not any("#" in n for n in names), names  # told apart by a setting, not by a number


def test_a_sweeps_names_reach_legends_csv_json_report_and_another_session(toy, tiny_backbone):
    heads = [_h("kernel_initializer=zeros"), _h("kernel_initializer=random_normal(stddev=10)")]
    sweep = train(heads, toy("binary"), epochs=2, seed=0, loaded=tiny_backbone)
    expected = ["zeros", "random_normal(stddev=10)"]
    assert [r.label for r in sweep.runs] == expected
    assert run_names(sweep) == expected
    assert [r["label"] for r in json.loads(json.dumps(sweep_to_dict(sweep)))["runs"]] == expected
    assert {row["label"] for row in history_rows(sweep)} == set(expected)
    page = html_report(sweep)
    assert all(name in page for name in expected)
    # The same shared result, served to a session whose first head carries a name of its own.
    mine = for_requester(sweep, (HeadConfig(task="binary", kernel_initializer="zeros", name="flat start"), heads[1]))
    assert [r.label for r in mine.runs] == ["flat start", "random_normal(stddev=10)"]
