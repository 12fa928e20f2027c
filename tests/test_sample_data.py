"""The committed sample datasets: every claimed task loads, labels are sane, the set regenerates exactly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.common.errors import DataError
from lib.common.paths import REPO_ROOT, SAMPLE_DATA
from lib.data import loader, samples
from lib.data.taskdata import TASKS

CLAIMS = [(c["name"], task) for c in samples.list_datasets() for task in c["tasks"]]


def _script():
    """scripts/make_sample_data.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_sample_data", REPO_ROOT / "scripts" / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pixels_digest(folder: Path) -> str:
    """Hash of every image's decoded pixels (PNG bytes may differ across zlib versions)."""
    h = hashlib.sha256()
    for path in sorted((folder / "images").glob("*.png")):
        h.update(path.name.encode())
        h.update(np.asarray(Image.open(path)).tobytes())
    return h.hexdigest()


def test_the_samples_cover_every_task_with_a_real_photo_dataset():
    cards = samples.list_datasets()
    assert {"fashion", "shapes"} <= {c["name"] for c in cards}
    assert {task for c in cards for task in c["tasks"]} == set(TASKS)
    assert any(c["kind"] == "photo" for c in cards) and any(c["kind"] == "synthetic" for c in cards)
    for c in cards:
        for key in ("title", "source", "licence", "n_images", "image_size", "description"):
            assert c[key], (c["name"], key)
        for spec in c["tasks"].values():
            assert spec["meaning"] and spec["label_names"] and spec["balance"]


def test_default_dataset_prefers_photos():
    assert samples.default_dataset("multiclass") == "fashion"
    assert samples.default_dataset("binary") == "fashion"
    assert samples.default_dataset("regression") == "shapes"
    assert samples.default_dataset("multilabel") == "shapes"
    with pytest.raises(DataError, match="Unknown task 'ranking'"):
        samples.default_dataset("ranking")


@pytest.mark.parametrize(("name", "task"), CLAIMS)
def test_every_claimed_task_loads(name, task):
    card = samples.dataset_card(name)
    td = samples.load_sample(name, task)
    n = card["n_images"]
    h, w = card["image_size"]
    assert td.images.shape == (n, h, w, 3) and td.images.dtype == np.uint8
    assert td.is_val.dtype == bool and td.is_val.sum() == card["n_val"]
    assert td.label_names == tuple(card["tasks"][task]["label_names"])
    assert td.description == card["tasks"][task]["meaning"]
    _, y_tr, _, y_va = td.split()
    if task in ("binary", "multiclass"):
        assert td.y.dtype == np.int32 and td.y.shape == (n,)
        assert set(np.unique(y_tr)) == set(np.unique(y_va)) == set(range(td.n_classes))
        counts = np.bincount(td.y, minlength=td.n_classes)
        assert dict(zip(td.label_names, counts.tolist(), strict=True)) == card["tasks"][task]["balance"]
    elif task == "multilabel":
        assert td.y.dtype == np.float32 and td.y.shape == (n, len(td.label_names))
        assert set(np.unique(td.y)) <= {0.0, 1.0}
        assert (y_va.sum(axis=0) > 0).all()  # every label can be scored on validation
    else:
        assert td.y.dtype == np.float32 and td.y.shape == (n,)
        assert np.isfinite(td.y).all() and td.unit


def test_task_shapes_of_the_synthetic_set():
    multiclass = samples.load_sample("shapes", "multiclass")
    assert len(multiclass.label_names) >= 5
    multilabel = samples.load_sample("shapes", "multilabel")
    per_image = multilabel.y.sum(axis=1)
    assert len(multilabel.label_names) >= 3
    assert (per_image >= 2).mean() > 0.4  # many images have several labels at once
    regression = samples.load_sample("shapes", "regression")
    assert regression.unit == "px"
    assert regression.y.min() < 100 and regression.y.max() > 1000  # natural units, far beyond [0, 1]


def test_fashion_is_ten_classes_of_grayscale_photos_as_rgb():
    td = samples.load_sample("fashion", "multiclass")
    assert len(td.label_names) == 10
    assert (td.images[..., 0] == td.images[..., 2]).all()  # channels replicated
    assert any("RGB" in note for note in td.notes)
    binary = samples.load_sample("fashion", "binary")
    assert binary.label_names == ("other clothing", "footwear")
    footwear = {td.label_names.index(k) for k in ("Sandal", "Sneaker", "Ankle boot")}
    assert (binary.y == np.isin(td.y, list(footwear))).all()


def test_shirts_is_a_balanced_hard_binary_task_of_real_photos():
    td = samples.load_sample("shirts", "binary")
    assert td.label_names == ("T-shirt/top", "Shirt")
    assert len(td.y) == 800 and int(td.y.sum()) == 400  # 400 per class
    assert int(td.is_val.sum()) == 200 and int(td.y[td.is_val].sum()) == 100  # stratified 25%
    assert (td.images[..., 0] == td.images[..., 2]).all()
    assert samples.default_dataset("binary") == "fashion"  # the easy task stays the default
    card = samples.dataset_card("shirts")
    assert card["kind"] == "photo" and "Zalando" in (SAMPLE_DATA / "shirts" / "LICENSE").read_text()


def test_regenerating_shirts_reproduces_the_committed_files(tmp_path):
    # `make test` installs Debian's dataset-fashion-mnist first (the Makefile's fashion-mnist target): never skipped
    assert Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").exists(), (
        "needs Debian's dataset-fashion-mnist package: run `make test`, or apt-get install dataset-fashion-mnist")
    _script().build_fashion_pair(tmp_path / "shirts", "shirts")
    committed = SAMPLE_DATA / "shirts"
    for name in ("labels.csv", "card.json", "LICENSE"):
        assert (tmp_path / "shirts" / name).read_bytes() == (committed / name).read_bytes(), name
    assert _pixels_digest(tmp_path / "shirts") == _pixels_digest(committed)


def test_split_is_fixed_and_shared_by_tasks():
    first = samples.load_sample("shapes", "binary")
    samples._sample_table.cache_clear()
    again = samples.load_sample("shapes", "binary")
    assert first.fingerprint == again.fingerprint
    assert (samples.load_sample("shapes", "regression").is_val == first.is_val).all()
    assert abs(first.is_val.mean() - 0.25) < 0.02


def test_sample_images_are_read_only():
    td = samples.load_sample("shapes", "binary")
    with pytest.raises(ValueError):
        td.images[0, 0, 0, 0] = 1


def test_unknown_names_and_missing_tasks_say_what_exists():
    with pytest.raises(DataError, match="no sample dataset 'cifar'.*fashion, shapes"):
        samples.load_sample("cifar", "binary")
    with pytest.raises(DataError, match="'fashion' has no regression task; it has: binary, multiclass"):
        samples.load_sample("fashion", "regression")
    with pytest.raises(DataError, match="neither a sample dataset"):
        loader.load_dataset("no-such-thing", "binary")
    assert loader.load_dataset("shapes", "regression").dataset == "shapes"


def test_sample_data_stays_small():
    own = [p for d in ("fashion", "shapes", "shirts") for p in (SAMPLE_DATA / d).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in own) < 5 * 2**20
    assert (SAMPLE_DATA / "fashion" / "LICENSE").read_text().count("Zalando") >= 1


def test_regenerating_shapes_reproduces_the_committed_files(tmp_path):
    card = _script().build_shapes(tmp_path / "shapes")
    committed = SAMPLE_DATA / "shapes"
    assert (tmp_path / "shapes" / "labels.csv").read_bytes() == (committed / "labels.csv").read_bytes()
    assert card == json.loads((committed / "card.json").read_text())
    assert (tmp_path / "shapes" / "card.json").read_bytes() == (committed / "card.json").read_bytes()
    assert _pixels_digest(tmp_path / "shapes") == _pixels_digest(committed)


def test_shape_labels_match_the_drawing():
    from lib.data import shapes

    images, rows = shapes.generate(n=20, seed=3)
    for image, row in zip(images, rows, strict=True):
        background = image.astype(int).std(axis=2) < 20  # greys; every shape colour is saturated
        painted = (~background).sum()
        assert abs(painted - row["total_area_px"]) <= 0.02 * row["total_area_px"] + 5
        assert 1 <= row["n_shapes"] <= 4
        assert sum(row[c] for c in shapes.COLOURS) >= 1
