"""A teacher's room around a lesson or an experiment: the question, the votes, the measured reveal."""

from __future__ import annotations
