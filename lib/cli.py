"""Headless command line: `python -m lib sweep|datasets|weights|table ...`.

Bad arguments exit with status 2 and one line saying what to fix; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from lib.common.errors import HeadLabError
from lib.data.taskdata import TASKS
from lib.heads.config import HeadConfig

# The keys are HeadConfig's own fields, so a new setting is listed without anyone writing it here.
_KEYS = textwrap.fill(", ".join(f.name for f in fields(HeadConfig) if f.name != "task"),
                      width=96, initial_indent="  ", subsequent_indent="  ")
HEAD_HELP = f"""\
A head is comma-separated key=value pairs whose keys are HeadConfig's fields:
{_KEYS}
Omitted keys take the task's textbook head (binary/multilabel: sigmoid + binary_crossentropy,
multiclass: softmax + sparse_categorical_crossentropy, regression: linear + mse) and an omitted
`units` takes the task's natural count. Examples:
  --head 'units=1,activation=softmax,loss=binary_crossentropy'
  --head 'activation=linear,from_logits=true,kernel_initializer=random_normal(stddev=10)'
  --head 'hidden=128:relu;64:relu,dropout=0.2,pooling=flatten,unfrozen=20'
  --head 'unfrozen=20,fine_tune_epochs=5'   (two phases: frozen base first, then the top 20 layers at 1e-5)

The JSON has the experiment (task, dataset, backbone, weights, epochs, seed, backend, timing) and
one entry per head in `runs`: label, config, status, history, final, outputs, and
  verdict        the verdict after training: the pairing table and what the run measured as one
                 (level ok|warning|error, message, symptoms with code/severity/message/knob/cause, knobs)
  table_verdict  the pairing table's own verdict before training (level, codes, message, symptoms, knobs)
  diagnostics    the same symptoms as verdict.symptoms
  loss_used      which values the loss was computed on, measured by recomputing the reported validation
                 loss of every kept epoch from each candidate (not taken from the docs):
                 pre_activation (the values before softmax/sigmoid), outputs (what predict() returns),
                 clipped_outputs (the outputs clipped into (ε, 1−ε)), or unknown (none reproduces it)
  loss_used_evidence  how clear that was (clarity clear|weak|none|single), the sentence the app shows,
                 the reported loss and each candidate's recomputed loss at the last epoch checked
  top_losses     the validation images it gets most wrong, worst first: [{{index, loss}}], index into the
                 validation set, loss = the head's own loss on what predict() returned (regression: the
                 absolute error in the target's units); empty for a diverged or refused head
  confidently_wrong  how many validation predictions are wrong with probability >= 0.9 (one unit:
                 >= 0.9 or <= 0.1; multi-label: per image and label); null for regression heads
Outputs are kept for every epoch up to 50 (evenly thinned beyond: at most 51 per run).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line instead of usage + traceback
        print(f"error: {message} (see `python -m lib {self.prog.split()[-1]} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lib", description="Head Lab engine, headless.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("sweep", help="train head configurations side by side and write a JSON report",
                       description="Train one or more head configurations on cached backbone features and write "
                       "a JSON report; each run's `verdict` is the verdict after training.",
                       epilog=HEAD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--task", required=True, choices=TASKS)
    s.add_argument("--head", action="append", default=[], metavar="SPEC",
                   help="a head configuration (repeat for several); default: the task's textbook head")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--backbone", default=None, help="backbone name (see `weights status`)")
    s.add_argument("--size", type=int, default=None, help="input size in pixels (default: 96)")
    s.add_argument("--weights", default="auto", choices=("auto", "imagenet", "random"))
    s.add_argument("--dataset", default=None,
                   help="a sample dataset's name, or a path to a zip/folder of your images")
    s.add_argument("--no-cache", action="store_true", help="recompute backbone features")
    s.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")

    sub.add_parser("datasets", help="list the sample datasets and the tasks each supports")

    w = sub.add_parser("weights", help="backbone weights: status, or fetch for offline use")
    w.add_argument("action", choices=("status", "fetch"))
    w.add_argument("names", nargs="*", help="backbones to fetch (default: all)")
    w.add_argument("--json", action="store_true")

    t = sub.add_parser("table", help="print the pairing table for a task")
    t.add_argument("--task", required=True, choices=TASKS)
    t.add_argument("--outputs", type=int, default=None, help="classes/labels (default: 5 or 1)")
    t.add_argument("--json", action="store_true")
    return p


def cmd_sweep(args) -> int:
    from lib.data.loader import load_dataset
    from lib.data.samples import default_dataset
    from lib.heads.config import default_head, parse_head_string

    heads = [parse_head_string(args.task, spec) for spec in args.head] or [default_head(args.task)]
    dataset = args.dataset or default_dataset(args.task)
    data = load_dataset(dataset, args.task)  # a bad dataset is refused before TensorFlow loads

    from lib.backbones.registry import DEFAULT_BACKBONE
    from lib.report.results import sweep_to_dict
    from lib.train.diagnostics import annotate
    from lib.train.trainer import train

    def progress(event: dict) -> None:
        if args.quiet:
            return
        if event["stage"] == "features":
            print(f"\rfeatures {event['fraction']:4.0%}", end="", file=sys.stderr)
        elif event["run"] == 0:
            print(f"\repoch {event['epoch']}/{event['epochs']}   ", end="", file=sys.stderr)

    sweep = train(heads, data, epochs=args.epochs, seed=args.seed, backbone=args.backbone or DEFAULT_BACKBONE,
                  input_size=args.size, weights=args.weights, batch_size=args.batch_size,
                  use_cache=not args.no_cache, progress=progress)
    if not args.quiet:
        print(file=sys.stderr)
    report = sweep_to_dict(annotate(sweep))
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text)
        for run in report["runs"]:
            final = {k: round(v, 4) for k, v in run["final"].items() if isinstance(v, float)}
            print(f"{run['label']:<40} {run['status']:<9} {run['verdict']['level']:<8} {final}")
    else:
        print(text)
    return 0


def cmd_datasets(args) -> int:
    from lib.data.samples import list_datasets

    for card in list_datasets():
        tasks = ", ".join(card["tasks"])
        print(f"{card['name']:<22} {card.get('n_images', '?'):>5} images  tasks: {tasks}  — {card.get('title', '')}")
    return 0


def cmd_weights(args) -> int:
    from lib.backbones import registry as backbones

    if args.action == "fetch":
        names = args.names or list(backbones.REGISTRY)
        result = backbones.fetch_weights(names)
        for name, status in result.items():
            print(f"{name:<18} {status}")
        return 0 if all(not s.startswith("failed") for s in result.values()) else 1
    rows = backbones.status_table()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['name']:<18} {r['status']:<32} {r['advice']}")
    return 0


def cmd_table(args) -> int:
    from lib.heads.pairings import table_rows

    n = args.outputs or (1 if args.task in ("binary", "regression") else 5)
    rows = table_rows(args.task, n)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['units']:>3} {r['activation']:<8} {r['loss']:<32} logits={r['from_logits']!s:<5} "
                  f"labels={r['labels']:<8} {r['level']:<8} {r['codes']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"sweep": cmd_sweep, "datasets": cmd_datasets, "weights": cmd_weights,
                "table": cmd_table}[args.command](args)
    except HeadLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
