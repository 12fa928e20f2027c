"""The same sweep repeated over consecutive seeds, and its spread: a finding should hold beyond one draw.

With 200 validation images one image is 0.5 accuracy points, and a different seed (initial weights,
batch order) moves a head's final accuracy by a few points. `train_seeds` reruns the heads only (the
backbone features are cached once), and `SeedSweeps` answers "mean, min and max over the seeds" for
any run's final metric or curve.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lib.common.errors import ConfigError
from lib.train.trainer import SweepResult

MAX_SEEDS = 5  # each seed retrains every head: 5 keeps a 6-head lesson well inside one Train click's budget
SEED_CHOICES = (1, 3, 5)


@dataclass(frozen=True)
class Spread:
    """One value over the seeds: mean, standard deviation (0 for one seed), min, max and each seed's value."""

    mean: float
    sd: float
    lo: float
    hi: float
    values: tuple[float, ...]

    def text(self, fmt: str = ".3g", percent: bool = False) -> str:
        """'0.86 ± 0.01 (0.85–0.88)', or one value alone; percent=True shows points."""
        def f(v: float) -> str:
            return f"{v:.1%}" if percent else format(v, fmt)
        if len(self.values) == 1:
            return f(self.mean)
        sd = f"{100 * self.sd:.1f} pt" if percent else format(self.sd, fmt)
        return f"{f(self.mean)} ± {sd} ({f(self.lo)}–{f(self.hi)})"


def spread(values: Sequence[float]) -> Spread:
    """Mean, sample sd (ddof=1; 0 for a single value), min and max, ignoring NaN."""
    v = np.asarray([np.nan if x is None else float(x) for x in values], dtype=float)
    ok = v[np.isfinite(v)]
    if not ok.size:
        nan = float("nan")
        return Spread(nan, nan, nan, nan, tuple(v.tolist()))
    sd = float(np.std(ok, ddof=1)) if ok.size > 1 else 0.0
    return Spread(float(ok.mean()), sd, float(ok.min()), float(ok.max()), tuple(v.tolist()))


@dataclass(frozen=True)
class SeedSweeps:
    """The same heads and data trained with seeds s, s+1, …: one SweepResult per seed, same run order."""

    sweeps: tuple[SweepResult, ...]

    def __post_init__(self) -> None:
        if not self.sweeps:
            raise ValueError("SeedSweeps needs at least one sweep")
        if len({len(s.runs) for s in self.sweeps}) != 1:
            raise ValueError("every seed's sweep must have the same heads")

    @classmethod
    def of(cls, result: SweepResult | SeedSweeps) -> SeedSweeps:
        """A single sweep as a one-seed repeat (so checks accept either)."""
        return result if isinstance(result, SeedSweeps) else cls((result,))

    @property
    def first(self) -> SweepResult:
        return self.sweeps[0]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(s.seed for s in self.sweeps)

    @property
    def n_runs(self) -> int:
        return len(self.first.runs)

    def finals(self, i: int, key: str) -> np.ndarray:
        """Run i's final `key` for each seed (NaN where it has none)."""
        return np.array([np.nan if s.runs[i].final.get(key) is None else float(s.runs[i].final[key])
                         for s in self.sweeps], dtype=float)

    def final(self, i: int, key: str) -> Spread:
        return spread(self.finals(i, key))

    def curve(self, i: int, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(epochs, mean, min, max) of run i's history[key] over the seeds, on the epochs every seed has.

        A seed whose value is NaN at an epoch (a diverged run) is left out of that epoch's statistics.
        """
        hists = [s.runs[i].history for s in self.sweeps]
        n = min(len(h.get("epoch", [])) for h in hists)
        n = min([n] + [len(h.get(key, [])) for h in hists])
        if n == 0:
            empty = np.zeros(0)
            return empty, empty, empty, empty
        epochs = np.asarray(hists[0]["epoch"][:n], dtype=float)
        y = np.array([[np.nan if v is None else float(v) for v in h[key][:n]] for h in hists], dtype=float)
        y[~np.isfinite(y)] = np.nan
        with warnings.catch_warnings():  # an epoch where every seed diverged is NaN, on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            return epochs, np.nanmean(y, axis=0), np.nanmin(y, axis=0), np.nanmax(y, axis=0)


def seed_range(seed: int, n: int) -> list[int]:
    """The seeds of an n-fold repeat starting at `seed` (bounded: 1 to MAX_SEEDS, within the seed range)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"repeat over 1 to {MAX_SEEDS} seeds; got {str(n)[:40]}")
    top = 2**31 - 1
    start = min(int(seed), top - int(n) + 1)
    return list(range(start, start + int(n)))


def train_seeds(train_one: Callable[[int], SweepResult], seed: int, n: int) -> SeedSweeps:
    """Run `train_one(seed)` for seeds seed, seed+1, … (n of them) and collect the sweeps.

    `train_one` is the caller's own training call (the trainer with its loaded backbone, or the app's
    gated, cached one), so every seed reuses the same cached features and only the heads retrain.
    """
    return SeedSweeps(tuple(train_one(s) for s in seed_range(seed, n)))
