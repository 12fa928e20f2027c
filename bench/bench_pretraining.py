"""Benchmark: does pretraining matter on the sample data? Same architecture, same head, same seed.

Frozen MobileNetV2 with the bundled ImageNet weights vs the same (symmetric-padding) architecture
with random weights, for every sample dataset and task; prints the validation metric of each and
their difference.

    python bench/bench_pretraining.py [--epochs 20] [--size 96]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault("HEADLAB_CACHE", tempfile.mkdtemp(prefix="headlab-bench-"))

    from lib.backbones.registry import load_backbone
    from lib.data.loader import load_dataset
    from lib.data.samples import list_datasets
    from lib.heads.config import default_head
    from lib.train.metrics import primary_metric
    from lib.train.trainer import train

    pretrained = load_backbone("mobilenet_v2", args.size, "auto")
    random = load_backbone("mobilenet_v2", args.size, "random")
    print(f"MobileNetV2 @ {args.size}px: {pretrained.weights} vs {random.weights}; "
          f"textbook head per task, {args.epochs} epochs, seed {args.seed}")
    print(f"{'dataset':<10} {'task':<11} {'metric':<16} {'ImageNet':>9} {'random':>9}  difference")
    for card in list_datasets():
        for task in card["tasks"]:
            data = load_dataset(card["name"], task)
            head = default_head(task, learning_rate=0.1, bias_initializer="log_prior") if task == "regression" \
                else default_head(task)
            metric = primary_metric(task)
            scores = []
            for bb in (pretrained, random):
                run = train([head], data, epochs=args.epochs, seed=args.seed, loaded=bb).runs[0]
                scores.append(run.final.get(metric))
            a, b = scores
            better = "lower is better" if metric == "val_mae" else "higher is better"
            print(f"{card['name']:<10} {task:<11} {metric:<16} {a:>9.3f} {b:>9.3f}  {a - b:+.3f} ({better})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
