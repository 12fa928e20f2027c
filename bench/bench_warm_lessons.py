"""Benchmark: warm every lesson in a fresh process, then each lesson's first click from the cache, against
a cold first click measured in the same run; and what a participant's Train waits behind a warm sweep.

1. The warm-up (lib/serve/warmup.py) trains every lesson's default seeds, with an empty feature cache
   (unless --keep-cache): the time a freshly started server needs before every lesson is warm.
2. Warm first click: each lesson's click through the page's lib path (lib/serve/shared_training.train_shared
   per seed, then the lesson's check of its finding): a cache hit.
3. Cold first click: the same, with the shared sweep cache emptied (features stay cached, on disk and in
   memory, as on a server that has run anything on that data): what a first click cost before warm-up.
4. What a participant can wait behind, from the warm-up's own timeline: the longest step that cannot be
   stopped (head set-up + first epoch; any later epoch; one extraction batch; a backbone build), and,
   measured, the wait of a Train arriving at evenly spread moments of a warm sweep (--arrivals each, for
   the first lesson and the fine-tuning lesson).
Also the shared cache's bytes once every lesson is in it.

    python bench/bench_warm_lessons.py [--keep-cache] [--arrivals 4] [--lessons id,id]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep-cache", action="store_true", help="use the usual feature cache (default: an empty one)")
    p.add_argument("--arrivals", type=int, default=4, help="participant arrivals per measured warm sweep")
    p.add_argument("--lessons", default="", help="comma-separated lesson ids (default: all)")
    args = p.parse_args()
    if not args.keep_cache:
        os.environ["HEADLAB_CACHE"] = tempfile.mkdtemp(prefix="headlab-bench-warm-")

    from lib.backbones.registry import load_backbone
    from lib.data.samples import load_sample
    from lib.lessons import LESSONS
    from lib.serve import sweep_cache
    from lib.serve.gate import TrainingGate
    from lib.serve.shared_training import train_shared
    from lib.serve.warmup import WARMED, LessonWarmer, WarmJob, click_seeds, lesson_jobs
    from lib.train.seeds import SeedSweeps, seed_range

    lessons = [les for les in LESSONS if not args.lessons or les.id in args.lessons.split(",")]
    loads: dict[str, float] = {}
    backbones: dict = {}
    datas: dict = {}

    def backbone_for(name: str, size: int):  # what the pages' st.cache_resource does: one per process
        if (name, size) not in backbones:
            t = time.perf_counter()
            backbones[name, size] = load_backbone(name, size, "auto")
            loads[f"backbone {name} @ {size}"] = time.perf_counter() - t
        return backbones[name, size]

    def data_for(dataset: str, task: str):
        if (dataset, task) not in datas:
            t = time.perf_counter()
            datas[dataset, task] = load_sample(dataset, task)
            loads[f"data {dataset}/{task}"] = time.perf_counter() - t
        return datas[dataset, task]

    timeline: dict[str, list[tuple[float, dict]]] = {}
    job_seconds: dict[str, float] = {}

    during: dict[str, float] = {}  # what a participant met during the warm-up's longest step (see 4.)
    helpers: list[threading.Thread] = []

    def observe(job: WarmJob, event: dict) -> None:
        timeline.setdefault(attempt[0], []).append((time.perf_counter(), event))
        if job.trains_base and event["stage"] == "features" and event["fraction"] == 1.0 and not helpers:
            # The fine-tuning sweep's set-up and first epoch come next: in a fresh process, one step of ~20 s
            # (tracing a whole base's training step). A participant presses Train on the first lesson now.
            first = lessons[0].experiment

            def participant() -> None:
                data, bb = data_for(first.dataset, first.task), backbone_for(first.backbone, first.input_size)
                time.sleep(0.5)  # inside the step, not before it
                t = time.perf_counter()
                hit = train_shared(first.heads, data, bb, first.epochs, first.seed, training_gate=gate)
                during["cache hit"] = time.perf_counter() - t if hit.shared else float("nan")
                t = time.perf_counter()
                train_shared(first.heads, data, bb, first.epochs, 2000, training_gate=gate)
                during["train"] = time.perf_counter() - t

            helpers.append(threading.Thread(target=participant))
            helpers[0].start()

    attempt = [""]  # the warm-up's current attempt at a job, as the timeline names it

    class Timed(LessonWarmer):
        def warm(self, job: WarmJob) -> str:
            tries = sum(k.startswith(job.label) for k in timeline) + 1
            attempt[0] = job.label + (f" attempt {tries}" if tries > 1 else "")
            t = time.perf_counter()
            outcome = super().warm(job)
            job_seconds[job.label] = job_seconds.get(job.label, 0.0) + time.perf_counter() - t
            return outcome

    print(f"{len(lessons)} lessons, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start, "
          f"feature cache {'as it is' if args.keep_cache else 'empty'}")
    jobs = lesson_jobs(lessons)
    gate = TrainingGate(1)
    warmer = Timed(jobs, data_for=data_for, backbone_for=backbone_for, training_gate=gate, observe=observe)
    t0 = time.perf_counter()
    warmer.run()
    t_warm = time.perf_counter() - t0
    for h in helpers:
        h.join()
    print(f"\n1. warm-up: {len(jobs)} sweeps in {t_warm:.1f} s ({warmer.stats.count(WARMED)} warmed, "
          f"failed: {warmer.stats.failed or 'none'})")
    for what, s in loads.items():
        print(f"   {what}: {s:.2f} s")
    n, size = sweep_cache.stats()
    print(f"   shared sweep cache: {n} sweeps, {size / 2**20:.2f} MiB ({size / max(n, 1) / 1024:.0f} KiB per sweep; "
          f"limits {sweep_cache.MAX_SWEEPS} sweeps, {sweep_cache.MAX_BYTES / 2**20:.0f} MiB)")

    def click(lesson) -> tuple[float, bool]:
        """One lesson click through the page's lib path: every default seed, then the finding's check."""
        e = lesson.experiment
        t = time.perf_counter()
        data, bb = data_for(e.dataset, e.task), backbone_for(e.backbone, e.input_size)
        got = [train_shared(e.heads, data, bb, e.epochs, s, training_gate=gate)
               for s in seed_range(e.seed, click_seeds(e.seeds))]
        lesson.verify(SeedSweeps(tuple(g.sweep for g in got)))
        return time.perf_counter() - t, all(g.shared for g in got)

    warm = {les.id: click(les) for les in lessons}
    sweep_cache.clear()
    cold = {les.id: click(les) for les in lessons}
    print("\n2./3. first click per lesson: warm (served from the cache) vs cold (trained now, features cached)")
    print(f"   {'lesson':<32} {'seeds':>5} {'warm ms':>8} {'cold s':>8} {'cold/warm':>10}  warm-up s")
    for les in lessons:
        (w, hit), (c, _) = warm[les.id], cold[les.id]
        spent = sum(v for k, v in job_seconds.items() if k.startswith(les.id + " ("))
        print(f"   {les.id:<32} {click_seeds(les.experiment.seeds):>5} {1000 * w:>8.2f} {c:>8.2f} {c / w:>9.0f}×  "
              f"{spent:>8.1f}{'' if hit else '  (NOT a cache hit)'}")
    print(f"   slowest warm click {1000 * max(w for w, _ in warm.values()):.2f} ms (target ≤ 2 s, page drawing included); "
          f"cold clicks {min(c for c, _ in cold.values()):.2f}–{max(c for c, _ in cold.values()):.2f} s")

    print("\n4. the steps a participant's Train can wait behind (none can be stopped midway), from the warm-up:")
    worst: list[tuple[float, str]] = []
    for label, events in timeline.items():
        feats = [t for t, e in events if e["stage"] == "features"]
        batch = max((b - a for a, b in zip(feats, feats[1:])), default=0.0)
        ends: dict[int, float] = {}
        for t, e in events:
            if e["stage"] == "epoch":
                ends[e["epoch"]] = t
        start = feats[-1] if feats else events[0][0]
        first = ends.get(1, start) - start  # head set-up (building, tracing) and epoch 1
        later = max((ends[k] - ends[k - 1] for k in ends if k - 1 in ends), default=0.0)
        worst.append((max(first, later, batch), f"{label}: set-up + epoch 1 {first:.2f} s, longest later epoch "
                      f"{later:.2f} s, longest extraction batch {batch:.2f} s"))
    for _, text in sorted(worst, reverse=True)[:6]:
        print("   " + text)
    if during:
        first = lessons[0].experiment
        t = time.perf_counter()
        train_shared(first.heads, data_for(first.dataset, first.task), backbone_for(first.backbone, first.input_size),
                     first.epochs, 2001, training_gate=gate)
        alone = time.perf_counter() - t
        print(f"   during the fine-tuning warm sweep's set-up + epoch 1 (fresh process): {lessons[0].id} served from "
              f"the cache in {1000 * during['cache hit']:.2f} ms; the same Train at a new seed {during['train']:.2f} s "
              f"(alone, after the warm-up: {alone:.2f} s, {during['train'] / alone:.1f}×)")
    print(f"   backbone builds (inside the warm-up's slot): longest {max((v for k, v in loads.items() if k.startswith('backbone')), default=0):.2f} s")

    print(f"\n   measured: a participant's Train (the same lesson at a seed nobody ran) arriving at {args.arrivals} "
          "evenly spread moments of a warm sweep, against the same Train alone")
    targets = [les for les in lessons if les is lessons[0] or les.id == "fine-tuning"]
    for les in targets:
        job = next(j for j in jobs if j.lesson == les.id)
        data, bb = data_for(job.dataset, job.task), backbone_for(job.backbone, job.input_size)

        def participant(seed: int, job=job, data=data, bb=bb) -> tuple[float, float]:
            """(seconds to a training slot, seconds of the whole Train) through the page's lib path."""
            t, started = time.perf_counter(), []
            train_shared(job.heads, data, bb, job.epochs, seed, training_gate=gate,
                         on_start=lambda s=started: s.append(time.perf_counter()))
            return started[0] - t, time.perf_counter() - t

        sweep_cache.clear()
        t = time.perf_counter()
        LessonWarmer([job], data_for=data_for, backbone_for=backbone_for, training_gate=gate).warm(job)
        full = time.perf_counter() - t  # this warm sweep alone (traced, features in memory): the span arrivals cover
        alone = participant(1000)[1]
        rows = []
        for i in range(args.arrivals):
            sweep_cache.clear()
            w = LessonWarmer([job], data_for=data_for, backbone_for=backbone_for, training_gate=gate)
            result: list[str] = []
            thread = threading.Thread(target=lambda w=w, r=result, j=job: r.append(w.warm(j)))
            thread.start()
            time.sleep(full * (i + 0.5) / args.arrivals)
            to_slot, total = participant(1001 + i)
            thread.join()
            rows.append((to_slot, total, result[0]))
        print(f"   {job.label}: warm sweep alone {full:.2f} s, participant's Train alone {alone:.2f} s; arriving "
              f"during the warm sweep: " + "; ".join(f"slot after {a:.3f} s, Train {b:.2f} s ({c})" for a, b, c in rows)
              + f" — at worst {max(b for _, b, _ in rows) / alone:.2f}× its time alone")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
