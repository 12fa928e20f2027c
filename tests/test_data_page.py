"""The Data page: every sample dataset × task renders, uploads are validated per session, and the
gallery helpers (balanced examples, captions, thumbnails, balance) do what the page relies on."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lib.common.text import md_escape, md_message
from lib.data import gallery, uploads
from lib.data.limits import UploadLimits
from lib.data.samples import dataset_card, list_datasets, load_sample
from lib.data.taskdata import TASKS, TaskData

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "data.py")
SAMPLE_PAIRS = [(c["name"], t) for c in list_datasets() for t in c["tasks"]]


# ---------------------------------------------------------------- builders


def png(value: int, size: tuple[int, int] = (12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value % 256, 40, 200)).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def class_zip(spec: dict[str, int], top: str = "pets/", offset: int = 0) -> bytes:
    """Class folders with n distinct images each (offset changes every pixel value)."""
    return zip_bytes({
        f"{top}{c}/{c}_{i:02d}.png": png(offset + 20 * k + i)
        for k, (c, n) in enumerate(spec.items()) for i in range(n)
    })


def csv_zip(csv_text: str, n: int) -> bytes:
    files = {f"images/im{i}.png": png(10 + 7 * i) for i in range(n)}
    files["labels.csv"] = csv_text.encode()
    return zip_bytes(files)


def toy(task: str, y, is_val=None, names=("a", "b"), unit: str = "") -> TaskData:
    y = np.asarray(y, np.float32 if task in ("multilabel", "regression") else np.int32)
    n = len(y)
    is_val = np.zeros(n, bool) if is_val is None else np.asarray(is_val, bool)
    return TaskData("toy", task, np.zeros((n, 4, 4, 3), np.uint8), y, is_val, tuple(names), unit=unit)


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60)


# ---------------------------------------------------------------- the page, sample datasets


@pytest.mark.parametrize(("name", "task"), SAMPLE_PAIRS)
def test_page_renders_every_sample_and_task(name: str, task: str) -> None:
    at = page().run()
    at.selectbox(key="data_dataset").set_value(name).run()
    at.radio(key="data_task").set_value(task).run()
    assert not at.exception
    card = dataset_card(name)
    assert at.selectbox(key="data_dataset").value == name
    assert at.radio(key="data_task").value == task
    assert at.radio(key="data_task").options == [t for t in TASKS if t in card["tasks"]]
    texts = " ".join(m.value for m in at.markdown) + " ".join(i.value for i in at.info)
    assert card["title"] in [h.value for h in at.subheader]
    assert md_escape(card["tasks"][task]["meaning"]) in texts
    assert md_escape(card["licence"]) in texts
    assert f"{card['n_images']:,} images" in texts
    data = load_sample(name, task)
    grid = at.image[0]
    assert len(grid.value) == 24
    expected = gallery.example_indices(data, 24)
    assert grid.captions == [md_escape(gallery.grid_caption(data, int(i))) for i in expected]
    assert len(at.get("plotly_chart")) >= 1


def test_task_options_follow_the_dataset() -> None:
    at = page().run()
    datasets = {c["name"]: [t for t in TASKS if t in c["tasks"]] for c in list_datasets()}
    for name, tasks in datasets.items():
        at.selectbox(key="data_dataset").set_value(name).run()
        assert at.radio(key="data_task").options == tasks
    # a task the next dataset lacks falls back to its first task, without an error
    rich = max(datasets, key=lambda n: len(datasets[n]))
    poor = min(datasets, key=lambda n: len(datasets[n]))
    at.selectbox(key="data_dataset").set_value(rich).run()
    missing = next(t for t in datasets[rich] if t not in datasets[poor])
    at.radio(key="data_task").set_value(missing).run()
    at.selectbox(key="data_dataset").set_value(poor).run()
    assert not at.exception
    assert at.radio(key="data_task").value == datasets[poor][0]


# ---------------------------------------------------------------- the page, uploads


def test_page_upload_success_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    at = page().run()
    at.radio(key="upload_task").set_value("multiclass")
    at.file_uploader(key="upload_zip").upload("My pets.zip", class_zip({"cat": 6, "dog": 5, "fox": 4}), "application/zip")
    at.run()
    assert not at.exception
    assert not at.error
    success = at.success[0].value
    assert "15 images" in success
    assert md_escape("upload: My pets") in success  # shown as text, not as Markdown
    stored = at.session_state["user_data"]
    assert set(stored) == {"multiclass"} and stored["multiclass"].label_names == ("cat", "dog", "fox")
    assert at.session_state["user_data_name"] == "My pets"
    assert len(at.image[-1].value) == 15  # fewer images than the grid holds: all of them
    sid = at.session_state["session_id"]
    assert list((tmp_path / "cache" / "uploads" / sid).iterdir()) == []  # in memory; nothing left on disk

    # the same zip for a task its layout does not fit: a clear message, no traceback, old data kept
    at.radio(key="upload_task").set_value("regression").run()
    assert not at.exception
    assert at.error and "CSV" in at.error[0].value
    assert set(at.session_state["user_data"]) == {"multiclass"}


def test_page_refuses_a_non_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    at = page().run()
    at.file_uploader(key="upload_zip").upload("notes.zip", b"this is not a zip", "application/zip")
    at.run()
    assert not at.exception
    assert "not a valid zip" in at.error[0].value
    assert "user_data" not in at.session_state


def test_page_passes_a_cancel_check_and_frees_the_upload_when_the_session_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    calls, watched = [], []
    real = uploads.handle_upload

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    class Janitor:
        def watch(self, sid, kept):
            watched.append((sid, kept))

    monkeypatch.setattr(uploads, "handle_upload", spy)
    monkeypatch.setattr(uploads, "session_janitor", lambda *a, **k: Janitor())
    at = page().run()
    at.radio(key="upload_task").set_value("binary")
    at.file_uploader(key="upload_zip").upload("pets.zip", class_zip({"cat": 4, "dog": 4}), "application/zip")
    at.run()
    assert not at.exception and not at.error
    cancelled = calls[0]["cancelled"]
    assert callable(cancelled) and cancelled() is False  # this session is connected
    (sid, kept), = watched
    assert sid and kept is at.session_state["user_data"] and set(kept) == {"binary"}
    assert all(not isinstance(v, TaskData) for v in at.session_state["_data_upload_result"])  # data kept once


def test_page_says_which_upload_the_session_budget_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from lib.data import limits

    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path / "cache"))
    one = 15 * 10 * 12 * 3  # the first upload's images, in bytes
    monkeypatch.setattr(limits, "UploadLimits", functools.partial(UploadLimits, max_session_bytes=one + 100))
    at = page().run()
    at.radio(key="upload_task").set_value("multiclass")
    at.file_uploader(key="upload_zip").upload("My pets.zip", class_zip({"cat": 6, "dog": 5, "fox": 4}), "application/zip")
    at.run()
    assert not any("no longer keeps" in i.value for i in at.info)  # (the sample tab has an info box of its own)
    assert set(at.session_state["user_data"]) == {"multiclass"}
    at.radio(key="upload_task").set_value("binary")
    at.file_uploader(key="upload_zip").upload("two.zip", class_zip({"ant": 4, "bee": 4}), "application/zip")
    at.run()
    assert not at.exception and not at.error
    assert set(at.session_state["user_data"]) == {"binary"}
    notice = " ".join(i.value for i in at.info if "no longer keeps" in i.value)
    assert "My pets" in notice and "multiclass task" in notice and "upload it again" in notice


# ---------------------------------------------------------------- handle_upload


def test_handle_upload_class_folders(tmp_path: Path) -> None:
    data, message = uploads.handle_upload(class_zip({"cat": 6, "dog": 6}), "pets.zip", "binary", tmp_path / "s")
    assert data is not None, message
    assert data.dataset == "pets" and data.task == "binary"
    assert data.label_names == ("cat", "dog") and len(data.y) == 12
    assert "12 images" in message and "2 classes" in message
    assert uploads.experiment_name(data) == "upload: pets"


def test_handle_upload_csv_tasks(tmp_path: Path) -> None:
    rows = "\n".join(f"images/im{i}.png,{'cat;dog' if i % 2 else 'dog'}" for i in range(8))
    data, message = uploads.handle_upload(csv_zip("filename,labels\n" + rows, 8), "tags.zip", "multilabel", tmp_path)
    assert data is not None, message
    assert data.label_names == ("cat", "dog")
    rows = "\n".join(f"images/im{i}.png,{1.5 * i}" for i in range(8))
    data, message = uploads.handle_upload(csv_zip("filename,weight (kg)\n" + rows, 8), "w.zip", "regression", tmp_path)
    assert data is not None, message
    assert data.unit == "kg" and "target weight" in message


@pytest.mark.parametrize(
    ("content", "task", "needle"),
    [
        (b"", "binary", "empty"),
        (b"PK\x03\x04 definitely broken", "binary", "not a valid zip"),
        (zip_bytes({"cat/a.png": png(1), "cat/b.png": png(2)}), "binary", "Only one class folder"),
        (zip_bytes({"readme.txt": b"hello"}), "multiclass", "No image files"),
        (zip_bytes({"../evil.png": png(1)}), "binary", "outside the archive"),
        (class_zip({"a": 3, "b": 3}), "regression", "CSV"),
        (class_zip({"a": 3, "b": 3}), "nonsense", "Unknown task"),
    ],
)
def test_handle_upload_refusals_are_messages(tmp_path: Path, content: bytes, task: str, needle: str) -> None:
    data, message = uploads.handle_upload(content, "x.zip", task, tmp_path / "s")
    assert data is None
    assert needle in message
    assert "Traceback" not in message


def test_handle_upload_size_limit(tmp_path: Path) -> None:
    content = class_zip({"a": 3, "b": 3})
    limits = UploadLimits(max_upload_bytes=len(content) - 1)
    data, message = uploads.handle_upload(content, "x.zip", "binary", tmp_path, limits)
    assert data is None and "at most" in message and "MB" in message
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_handle_upload_unexpected_error_is_a_short_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(uploads, "load_folder", boom)
    data, message = uploads.handle_upload(class_zip({"a": 3, "b": 3}), "x.zip", "binary", tmp_path)
    assert data is None
    assert "could not be read" in message and "RuntimeError" in message and "internal detail" not in message


def test_sessions_keep_separate_data(tmp_path: Path) -> None:
    first = class_zip({"cat": 4, "dog": 4}, offset=0)
    second = class_zip({"cat": 4, "dog": 4}, offset=100)  # same file names, other pixels
    a_dir, b_dir = uploads.session_dir(uploads.new_session_id(), tmp_path), uploads.session_dir(uploads.new_session_id(), tmp_path)
    a, _ = uploads.handle_upload(first, "pets.zip", "binary", a_dir)
    b, _ = uploads.handle_upload(second, "pets.zip", "binary", b_dir)
    assert a is not None and b is not None
    assert a_dir != b_dir and a_dir.parent == b_dir.parent == tmp_path
    assert not np.array_equal(a.images, b.images)
    # re-loading in session A (another task, same zip) still sees A's pixels, not B's
    again, _ = uploads.handle_upload(first, "pets.zip", "multiclass", a_dir)
    assert again is not None and np.array_equal(again.images, a.images)
    # nothing stays on disk once an upload is loaded (the session keeps it in memory)
    assert list(a_dir.iterdir()) == [] and list(b_dir.iterdir()) == []


def test_nothing_stays_on_disk_after_a_refused_or_failed_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = uploads.session_dir(uploads.new_session_id(), tmp_path)
    data, message = uploads.handle_upload(class_zip({"cat": 4}), "one.zip", "binary", folder)  # one class: refused
    assert data is None and message
    monkeypatch.setattr(uploads, "load_folder", lambda *a, **k: 1 / 0)
    data, message = uploads.handle_upload(class_zip({"cat": 4, "dog": 4}), "x.zip", "binary", folder)
    assert data is None and "unexpected ZeroDivisionError" in message
    assert list(folder.iterdir()) == []


def test_uploads_unpack_a_bounded_number_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    busy, peak, lock = [0], [0], threading.Lock()
    real = uploads.extract_zip

    def slow_extract(*a, **k):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        try:
            time.sleep(0.2)
            return real(*a, **k)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(uploads, "extract_zip", slow_extract)
    content = class_zip({"cat": 4, "dog": 4})
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(uploads.handle_upload(
        content, "pets.zip", "binary", uploads.session_dir(uploads.new_session_id(), tmp_path))))
        for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(r.data is not None for r in results)
    assert peak[0] == uploads.EXTRACTION_SLOTS  # the limit was reached and never passed
    assert uploads.max_disk_bytes() == uploads.EXTRACTION_SLOTS * uploads.DEFAULT_LIMITS.max_uncompressed_bytes


def test_session_ids_and_names(tmp_path: Path) -> None:
    sid = uploads.new_session_id()
    assert uploads.session_dir(sid, tmp_path) == tmp_path / sid
    for bad in ("../x", "", "abc", sid + "/.."):
        with pytest.raises(ValueError):
            uploads.session_dir(bad, tmp_path)
    assert uploads.display_name("My Pets.ZIP") == "My Pets"
    assert uploads.display_name("C:\\Users\\me\\flowers.zip") == "flowers"
    assert uploads.display_name(".zip") == "upload"
    assert len(uploads.display_name("x" * 200 + ".zip")) == uploads.MAX_NAME_CHARS


def test_prune_stale_keeps_fresh_and_own(tmp_path: Path) -> None:
    import os

    old, fresh, mine = (uploads.new_session_id() for _ in range(3))
    for s in (old, fresh, mine):
        (tmp_path / s).mkdir()
    (tmp_path / "not-a-session").mkdir()
    for s in (old, mine):
        os.utime(tmp_path / s, (1, 1))
    assert uploads.prune_stale(tmp_path, keep=mine) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh, mine, "not-a-session"])


def test_prune_stale_removes_extraction_folders_a_killed_server_left(tmp_path: Path) -> None:
    import os

    sid = uploads.new_session_id()
    left, running = tmp_path / sid / ".extract-left", tmp_path / sid / ".extract-running"
    for d in (left, running):
        (d / "cats").mkdir(parents=True)
    os.utime(left, (1, 1))
    assert uploads.prune_stale(tmp_path) == 1
    assert not left.exists() and running.exists()  # a fresh one may be an upload in progress


# ---------------------------------------------------------------- gallery helpers


def test_example_indices_balance_classes() -> None:
    y = np.array([0] * 50 + [1] * 10 + [2] * 3)
    data = toy("multiclass", y, is_val=np.arange(len(y)) % 4 == 0, names=("a", "b", "c"))
    idx = gallery.example_indices(data, 24, seed=0)
    assert len(idx) == len(set(idx)) == 24
    counts = Counter(int(data.y[i]) for i in idx)
    assert counts == {0: 11, 1: 10, 2: 3}  # the small classes give all they have
    assert list(data.y[idx]) == sorted(data.y[idx])  # grouped by class
    assert np.array_equal(idx, gallery.example_indices(data, 24, seed=0))
    assert not np.array_equal(idx, gallery.example_indices(data, 24, seed=1))
    # both splits appear, roughly in the data's proportion
    assert 3 <= int(data.is_val[idx].sum()) <= 9


def test_example_indices_evenly_split_samples() -> None:
    data = load_sample("fashion", "multiclass")
    idx = gallery.example_indices(data, 24)
    counts = Counter(int(data.y[i]) for i in idx)
    assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1
    assert int(data.is_val[idx].sum()) == 6  # 25% validation
    binary = load_sample("fashion", "binary")
    counts = Counter(int(binary.y[i]) for i in gallery.example_indices(binary, 24))
    assert counts == {0: 12, 1: 12}


def test_example_indices_multilabel_and_regression() -> None:
    y = np.zeros((40, 3))
    y[:30, 0] = 1
    y[30:34, 1] = 1
    y[34:36, 2] = 1  # rare label; rows 36..39 have no label
    data = toy("multilabel", y, names=("common", "some", "rare"))
    idx = gallery.example_indices(data, 12)
    assert len(idx) == len(set(idx)) == 12
    shown = [gallery.caption(data, int(i)) for i in idx]
    assert shown.count("rare") == 2 and shown.count("some") >= 3 and gallery.NO_LABEL in shown

    values = np.arange(100, dtype=float)
    reg = toy("regression", values, names=("size",), unit="px")
    idx = gallery.example_indices(reg, 10)
    picked = reg.y[idx]
    assert list(picked) == sorted(picked)
    assert all(10 * b <= v < 10 * (b + 1) for b, v in enumerate(picked))  # one per tenth of the range
    assert len(gallery.example_indices(reg, 500)) == 100
    assert len(gallery.example_indices(reg, 0)) == 0


def test_captions_per_task() -> None:
    assert gallery.caption(toy("binary", [0, 1], names=("no", "yes")), 1) == "yes"
    assert gallery.caption(toy("multiclass", [2, 0], names=("a", "b", "c")), 0) == "c"
    ml = toy("multilabel", [[1, 0, 1], [0, 0, 0]], names=("red", "green", "blue"))
    assert gallery.caption(ml, 0) == "red, blue"
    assert gallery.caption(ml, 1) == gallery.NO_LABEL
    reg = toy("regression", [534.0, 12.3456, 1730.0], names=("area",), unit="px")
    assert gallery.caption(reg, 0) == "534 px"
    assert gallery.caption(reg, 1) == "12.35 px"
    assert gallery.caption(reg, 2) == "1,730 px"
    split = toy("binary", [0, 1], is_val=[False, True], names=("no", "yes"))
    assert gallery.grid_caption(split, 0) == "no · train"
    assert gallery.grid_caption(split, 1) == "yes · val"


def test_thumbnail_sizes_and_frame() -> None:
    image = np.zeros((28, 28, 3), np.uint8)
    image[:14] = 255
    thumb = gallery.thumbnail(image, 96)
    assert thumb.size == (96, 96) and thumb.mode == "RGB"
    assert set(np.unique(np.asarray(thumb))) == {0, 255}  # nearest-neighbour: no blurred greys
    assert gallery.thumbnail(np.zeros((32, 64, 3), np.uint8), 96).size == (96, 48)
    assert gallery.thumbnail(np.zeros((300, 200, 3), np.uint8), 96).size == (64, 96)
    framed = np.asarray(gallery.thumbnail(image, 96, frame=gallery.VAL_COLOR))
    assert framed.shape == (96, 96, 3)
    assert tuple(framed[0, 0]) == tuple(int(gallery.VAL_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(framed[48, 48]) == (0, 0, 0)


def test_balance_table_and_figure() -> None:
    data = load_sample("shapes", "binary")
    rows = gallery.balance_table(data)
    card = dataset_card("shapes")["tasks"]["binary"]
    assert [r["label"] for r in rows] == list(card["label_names"])
    assert {r["label"]: r["total"] for r in rows} == card["balance"]
    assert {r["label"]: r["val"] for r in rows} == card["val_balance"]
    fig = gallery.balance_figure(data)
    assert [t.name for t in fig.data] == ["training", "validation"]
    assert list(fig.data[0].x) == [r["train"] for r in rows]

    ml = toy("multilabel", [[1, 0], [1, 1], [0, 0]], is_val=[False, True, False], names=("x", "y"))
    assert gallery.balance_table(ml) == [
        {"label": "x", "train": 1, "val": 1, "total": 2},
        {"label": "y", "train": 0, "val": 1, "total": 1},
        {"label": gallery.NO_LABEL, "train": 1, "val": 0, "total": 1},
    ]
    reg = load_sample("shapes", "regression")
    rows = gallery.balance_table(reg)
    assert sum(r["total"] for r in rows) == len(reg.y)
    assert rows[0]["low"] <= reg.y.min() and rows[-1]["high"] > reg.y.max()
    assert all(r["low"] == round(r["low"]) for r in rows)  # round edges
    gallery.balance_figure(reg)
    flat = toy("regression", [5.0, 5.0, 5.0], names=("v",))
    assert len(gallery.balance_table(flat)) == 1
    gallery.balance_figure(flat)
    evil = toy("multiclass", [0, 1], names=("<b>x</b>", "y"))
    assert "<b>" not in str(gallery.balance_figure(evil).data[0].y)


def test_facts_and_escaping() -> None:
    card = dataset_card("fashion")
    facts = dict(gallery.card_facts(card, "multiclass"))
    assert facts["Licence"] == card["licence"]
    assert facts["Size"].startswith("800 images")
    assert facts["Image size"].startswith("28×28 px")
    assert "Ankle boot" in facts["Classes"]
    assert "10 classes" in dict(gallery.data_facts(load_sample("fashion", "multiclass")))["Classes"]


def test_md_message_keeps_code_spans() -> None:
    text = "Zip it with `zip -r data_1.zip my_folder`; file a_b*.png is bad."
    assert md_message(text) == "Zip it with `zip -r data_1.zip my_folder`\\; file a\\_b\\*\\.png is bad\\."
