"""Benchmark: a 6-configuration sweep the seed articles' way vs Head Lab's way, in one run.

(a) the articles: for each configuration build backbone + head and `model.fit` it (frozen base),
    so the backbone runs again every epoch;
(b) Head Lab: backbone features computed once (and cached), all heads trained by `lib.train.trainer.train`.

Both run without shuffling so their losses can be compared epoch by epoch; the script fails if they
differ by more than the stated tolerance. Prints the speed-up ratios (targets: ≥30× including the
one-time feature extraction, ≥200× with features already cached).

    python bench/bench_sweep.py [--epochs 20] [--task binary] [--dataset NAME] [--size 96]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HEADS = {
    "binary": [
        "activation=sigmoid",
        "activation=softmax,units=1",
        "activation=softmax,units=2,loss=sparse_categorical_crossentropy",
        "activation=linear,from_logits=true",
        "hidden=128:relu,dropout=0.2",
        "pooling=max,kernel_initializer=random_normal(stddev=1)",
    ],
}
TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--task", default="binary", choices=sorted(HEADS))
    p.add_argument("--dataset", default=None)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ["HEADLAB_CACHE"] = tempfile.mkdtemp(prefix="headlab-bench-")  # a cold cache for (b)

    from lib.backbones.registry import load_backbone
    from lib.data.loader import load_dataset
    from lib.data.samples import default_dataset
    from lib.heads.config import parse_head_string
    from lib.train.reference import fit_full_model, preprocessed_images
    from lib.train.trainer import train

    data = load_dataset(args.dataset or default_dataset(args.task), args.task)
    configs = [parse_head_string(args.task, s) for s in HEADS[args.task]]
    bb = load_backbone("mobilenet_v2", args.size, "auto")
    print(f"data: {data.dataset} ({len(data.images)} images, {int((~data.is_val).sum())} train), "
          f"backbone: {bb.name} @ {bb.size}px, {bb.weights}; {len(configs)} configs × {args.epochs} epochs")

    # (a) the seed articles' way
    t0 = time.perf_counter()
    x = preprocessed_images(bb, data.images)
    ref = [fit_full_model(c, data, bb, epochs=args.epochs, seed=args.seed, x=x) for c in configs]
    t_ref = time.perf_counter() - t0
    print(f"(a) model.fit per configuration:     {t_ref:8.2f} s  ({t_ref / len(configs) / args.epochs:.3f} s per epoch)")

    # (b) Head Lab: cold cache (includes feature extraction), then warm
    t0 = time.perf_counter()
    cold = train(configs, data, epochs=args.epochs, seed=args.seed, loaded=bb, shuffle=False)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = train(configs, data, epochs=args.epochs, seed=args.seed, loaded=bb, shuffle=False)
    t_warm = time.perf_counter() - t0
    assert warm.timing["features_cached"] and not cold.timing["features_cached"]
    print(f"(b) Head Lab, features extracted:     {t_cold:8.2f} s  (features {cold.timing['features_seconds']:.2f} s)")
    print(f"(b) Head Lab, features cached:        {t_warm:8.2f} s")

    worst = 0.0
    for c, r, run in zip(configs, ref, warm.runs, strict=True):
        for key in ("loss", "val_loss"):
            a, b = np.asarray(r[key]), np.asarray(run.history[key])
            np.testing.assert_allclose(b, a, **TOLERANCE, err_msg=f"{c.label()} {key}")
            worst = max(worst, float(np.max(np.abs(a - b))))
    print(f"losses agree with model.fit within rtol={TOLERANCE['rtol']}, atol={TOLERANCE['atol']} "
          f"(largest difference {worst:.2e})")
    print(f"speed-up, whole sweep incl. feature extraction: {t_ref / t_cold:6.1f}×  (target ≥ 30×)")
    print(f"speed-up, features already cached:              {t_ref / t_warm:6.1f}×  (target ≥ 200×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
