"""Benchmark: the fine-tuning lesson's first (cold) and second (warm) Train, in a fresh process.

Cold = an empty feature cache (nothing extracted yet) and no compiled head pooled: what the first
click on the lesson costs after the server has loaded the backbone. Warm = the same Train again in
the same process (features in memory, graphs traced). Prints both, the backbone's load time, and
each head's accuracy and seconds per epoch (the ratio the lesson's finding states).

    python bench/bench_fine_tuning.py [--lesson fine-tuning] [--repeat 1]
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lesson", default="fine-tuning")
    p.add_argument("--repeat", type=int, default=1, help="warm Trains after the cold one")
    p.add_argument("--seeds", type=int, default=1, help="warm Trains use seeds 0..N-1 (the finding's spread)")
    args = p.parse_args()
    os.environ["HEADLAB_CACHE"] = tempfile.mkdtemp(prefix="headlab-bench-ft-")  # cold: an empty cache

    from lib.backbones.registry import load_backbone
    from lib.data.loader import load_dataset
    from lib.lessons import epoch_time_text, get_lesson
    from lib.train.trainer import train

    lesson = get_lesson(args.lesson)
    e = lesson.experiment
    t0 = time.perf_counter()
    bb = load_backbone(e.backbone, e.input_size, "auto")
    data = load_dataset(e.dataset, e.task)
    t_load = time.perf_counter() - t0
    print(f"lesson {lesson.id}: {e.dataset}/{e.task}, {len(data.images)} images, {e.backbone} @ {e.input_size} px, "
          f"{e.epochs} epochs, {len(e.heads)} heads, {os.cpu_count()} cores")
    print(f"backbone + data load: {t_load:.1f} s (paid once per server)")
    plan = [("cold", e.seed)] + [("warm", e.seed)] * args.repeat + [("warm", s) for s in range(args.seeds)
                                                                     if args.seeds > 1 and s != e.seed]
    for what, seed in plan:
        t = time.perf_counter()
        sweep = train(e.heads, data, epochs=e.epochs, seed=seed, loaded=bb)
        wall = time.perf_counter() - t
        what = f"{what} (seed {seed})"
        print(f"{what}: {wall:.1f} s (features {sweep.timing['features_seconds']:.1f} s, "
              f"training {sweep.timing['training_seconds']:.1f} s)")
        for run in sweep.runs:
            print(f"   {run.label:<32} {run.cut[:40]:<40} acc {run.final.get('val_accuracy', float('nan')):.3f}  "
                  f"val_loss {run.final.get('val_loss', float('nan')):.3f}  run {run.seconds:.1f} s")
        print("   " + epoch_time_text(sweep))
        problems = lesson.check(sweep)
        print("   check: " + ("holds" if not problems else "; ".join(problems)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
