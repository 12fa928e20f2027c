"""The headless CLI: a real sweep writes the promised JSON; bad calls exit 2 with one clear line."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lib.cli import main
from lib.train.metrics import float_equal

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lib", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_sweep_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["sweep", "--task", "binary", "--dataset", "fashion", "--size", "64", "--epochs", "3",
                 "--seed", "5", "--quiet", "--out", str(out),
                 "--head", "units=1,activation=sigmoid,loss=binary_crossentropy",
                 "--head", "units=1,activation=softmax,loss=binary_crossentropy"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "tensorflow" and report["keras_version"].startswith("3.")
    assert report["weights"] == "imagenet (bundled)" and report["dataset"] == "fashion"
    assert {"features_seconds", "training_seconds"} <= set(report["timing"])
    sigmoid, softmax = report["runs"]
    for run in report["runs"]:
        assert run["status"] == "ok"
        assert len(run["history"]["loss"]) == len(run["history"]["val_loss"]) == 3
        assert {"val_loss", "val_accuracy", "val_auc"} <= set(run["final"])
        assert set(run["verdict"]) >= {"level", "message", "symptoms", "knobs"}
        assert set(run["table_verdict"]) >= {"level", "codes", "message"}
        assert run["diagnostics"] == run["verdict"]["symptoms"]
        assert {"0", "3"} <= set(run["outputs"])
    assert sigmoid["verdict"]["level"] == "ok" and sigmoid["config"]["units"] == 1
    assert softmax["verdict"]["level"] == "error" and "softmax_one_unit" in softmax["table_verdict"]["codes"]
    # the run shows the table's problem, and its symptom names the table's knob, not another one
    constant = next(d for d in softmax["verdict"]["symptoms"] if d["code"] == "constant_output")
    assert constant["cause"] == "softmax_one_unit" and constant["knob"].startswith("activation (use sigmoid")
    # what predict() returns: every softmax-over-one-unit output is 1.0 to float precision (0.99999994 on
    # CPUs where TensorFlow uses Eigen's softmax instead of oneDNN's)
    assert float_equal([softmax["outputs"]["3"]["min"], softmax["outputs"]["3"]["max"]], 1.0).all()
    assert sigmoid["final"]["val_accuracy"] > 0.8  # pretrained features separate footwear easily
    # which tensor the loss used, measured on this run; the images it gets most wrong; confidently wrong
    assert softmax["loss_used"] == "pre_activation" and softmax["loss_used_evidence"]["clarity"] == "clear"
    assert sigmoid["loss_used"] in ("pre_activation", "clipped_outputs")  # saturation decides how it shows
    n_val = report["n_val"]
    for run in report["runs"]:
        losses = [t["loss"] for t in run["top_losses"]]
        assert losses == sorted(losses, reverse=True) and 0 < len(losses) <= n_val
        assert all(0 <= t["index"] < n_val for t in run["top_losses"])
        assert isinstance(run["confidently_wrong"], int)
    # softmax over one unit says 1 for every image: every negative validation image is confidently wrong
    assert softmax["confidently_wrong"] == round(n_val * (1 - softmax["final"]["val_accuracy"]))
    printed = capsys.readouterr().out
    assert "softmax×1 + BCE" in printed and "error" in printed


def test_sweep_defaults_to_the_task_head_and_sample_data(capsys):
    assert main(["sweep", "--task", "regression", "--size", "64", "--epochs", "2", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    run = report["runs"][0]
    assert report["dataset"] == "shapes" and report["unit"]
    assert (run["config"]["activation"], run["config"]["loss"], run["config"]["units"]) == ("linear", "mse", None)
    assert run["final"]["val_mae"] > 0
    assert run["confidently_wrong"] is None and run["loss_used"] == "outputs"  # regression: no probabilities


@pytest.mark.parametrize(("args", "fragment"), [
    (["sweep", "--task", "ternary"], "invalid choice: 'ternary'"),
    (["sweep", "--task", "binary", "--head", "units=0"], "units must be a whole number from 1"),
    (["sweep", "--task", "binary", "--head", "activation=swish"], "unknown activation 'swish'"),
    (["sweep", "--task", "binary", "--head", "learning_rate=1e9"], "learning_rate must be a number"),
    (["sweep", "--task", "binary", "--seed", "abc"], "invalid int value: 'abc'"),
    (["sweep", "--task", "binary", "--epochs", "1000000"], "epochs must be a whole number from 1 to"),
    (["sweep", "--task", "multilabel", "--dataset", "fashion"], "fashion"),
    (["sweep", "--task", "binary", "--dataset", "/no/such/place.zip"], "/no/such/place.zip"),
    (["sweep", "--task", "binary", "--backbone", "alexnet"], "unknown backbone 'alexnet'"),
])
def test_bad_calls_exit_2_with_one_clear_line(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(("error", "usage"))]
    assert any(fragment in ln for ln in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_the_head_keys():
    result = run_cli("sweep", "--help")
    assert result.returncode == 0
    from dataclasses import fields

    from lib.heads.config import HeadConfig

    keys = [f.name for f in fields(HeadConfig) if f.name != "task"]
    assert {"fine_tune_epochs", "fine_tune_learning_rate", "unfrozen"} <= set(keys)
    listed = result.stdout.split("keys are HeadConfig's fields:")[1].split("Omitted keys")[0]
    assert [k.strip() for k in listed.replace("\n", " ").split(",")] == keys  # every key, in order


def test_weights_status_shows_the_bundled_backbone_offline():
    result = run_cli("weights", "status", "--json")
    assert result.returncode == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["mobilenet_v2"]["status"] == "imagenet (bundled)"
    assert {"resnet50", "vgg16", "inception_v3", "efficientnet_b0"} <= set(rows)


def test_datasets_lists_every_task(capsys):
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    for task in ("binary", "multiclass", "multilabel", "regression"):
        assert task in text


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 99, 199)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("task", "files", "fragment"), [
    ("binary", {"a/" * 1500 + "x.png": b"", "c/1.png": b"", "d/1.png": b""}, "1,500 folders deep"),  # RecursionError
    ("binary", {"cats/" + "n" * 300 + ".png": b"", "dogs/1.png": b""}, "a name of 304 characters"),  # OSError
    ("regression", {"im.png": b"", "labels.csv": b"filename,value\nim.png," + b"9" * 200_000},
     "cannot be read as CSV"),  # _csv.Error: field larger than field limit
])
def test_hostile_datasets_exit_2_with_one_clear_line(tmp_path, capsys, monkeypatch, task, files, fragment):
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the CLI extracts the zip
    files = {name: content or _png() for name, content in files.items()}
    zpath = _zip(tmp_path / "hostile.zip", files)
    assert main(["sweep", "--task", task, "--dataset", str(zpath), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert "Traceback" not in err and len(err) < 600
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary extraction folder is gone


def test_help_documents_the_inspection_fields():
    from lib.train.loss_seen import LABELS

    text = run_cli("sweep", "--help").stdout
    for field in ("loss_used", "top_losses", "confidently_wrong"):
        assert f"\n  {field}" in text, field
    for label in LABELS:  # every value loss_used can take is explained
        assert label in text, label
