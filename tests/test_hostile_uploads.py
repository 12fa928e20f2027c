"""What a hostile or careless upload can do, and what stops it (issue 9, findings 2, 3, 6, 9, 10).

Every hostile file is built here, in memory, and kept small: huge images are PNGs that only
*declare* a huge size, so a test proves a limit is enforced from the headers (nothing decoded)
instead of timing anything.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import tomllib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.common.errors import DataError
from lib.common.paths import REPO_ROOT
from lib.data import csv_labels, decoding, loader, uploads
from lib.data.archive import extract_zip
from lib.data.limits import UploadLimits
from lib.data.loader import load_dataset, load_folder

DEFAULT = UploadLimits()

# ---------------------------------------------------------------- builders


def png(value: int = 100, size: tuple[int, int] = (6, 5)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value % 256, 40, 200)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(size: tuple[int, int], value: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, 90, 30)).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with almost no pixel data (a few hundred bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale, like the finding's files
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def zip_bytes(files: dict[str, bytes | None]) -> bytes:
    """name -> content (None: a directory entry)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if content is None:
                zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            else:
                zf.writestr(name, content)
    return buf.getvalue()


def classes(spec: dict[str, int], top: str = "") -> dict[str, bytes]:
    return {f"{top}{c}/{i:03d}.png": png(30 * k + i) for k, (c, n) in enumerate(spec.items()) for i in range(n)}


def csv_files(csv_text: str, n: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {f"images/im{i}.png": png(10 + 7 * i) for i in range(n)}
    files["labels.csv"] = csv_text.encode()
    return files


def load(tmp_path: Path, files: dict[str, bytes | None], task: str, limits: UploadLimits = DEFAULT, **kw):
    root = extract_zip(zip_bytes(files), tmp_path / "x", limits)
    return load_folder(root, task, limits, **kw)


def upload(tmp_path: Path, files: dict[str, bytes | None], task: str, **kw) -> uploads.UploadOutcome:
    return uploads.handle_upload(zip_bytes(files), "hostile.zip", task, tmp_path / "session", **kw)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every image actually decoded (header reads are not decodes)."""
    calls: list[str] = []
    real = decoding._decode

    def spy(im, size):
        calls.append(getattr(im, "filename", "?"))
        return real(im, size)

    monkeypatch.setattr(decoding, "_decode", spy)
    return calls


def short_and_clean(message: str, hostile: str) -> None:
    """A message the user can read: one line, short, never the hostile input itself."""
    assert "\n" not in message
    assert len(message) < 600, message
    assert hostile not in message


# ---------------------------------------------------------------- finding 2: label counts


def test_semicolon_labels_beyond_the_class_cap_are_refused(tmp_path: Path) -> None:
    rows = [f"images/im{i}.png," + ";".join(f"label{i}_{j}" for j in range(20)) for i in range(8)]  # 160 labels
    outcome = upload(tmp_path, csv_files("filename,labels\n" + "\n".join(rows), 8), "multilabel")
    assert outcome.data is None
    assert "at most 100 labels" in outcome.message
    short_and_clean(outcome.message, "label7_19")


def test_a_million_labels_are_refused_before_any_array_is_built(tmp_path: Path, monkeypatch) -> None:
    # The finding's 2.2 MB zip ran to MemoryError: 1,000 x 1,000,000 float32. Here 8 rows x 12,000 labels
    # (each cell under the csv module's 128 KB) would build an 8 x 96,000 array; the cap must stop
    # reading labels long before that.
    built = []
    real = np.array
    monkeypatch.setattr(csv_labels.np, "array", lambda obj, *a, **k: built.append(len(obj)) or real(obj, *a, **k))
    rows = [f"images/im{i}.png," + ";".join(f"{i}x{j}" for j in range(12_000)) for i in range(8)]
    with pytest.raises(DataError, match="at most 100 labels"):
        load(tmp_path, csv_files("filename,labels\n" + "\n".join(rows), 8), "multilabel")
    assert built == []  # no label matrix (nor anything else) was built


def test_zero_one_label_columns_beyond_the_cap_are_refused(tmp_path: Path) -> None:
    header = "filename," + ",".join(f"c{j}" for j in range(101))
    rows = [f"images/im{i}.png," + ",".join(str((i + j) % 2) for j in range(101)) for i in range(8)]
    with pytest.raises(DataError, match="101 label columns; at most 100 labels are supported"):
        load(tmp_path, csv_files(header + "\n" + "\n".join(rows), 8), "multilabel")


# ---------------------------------------------------------------- finding 3: time, pixels, paths


def test_total_pixels_are_budgeted_from_the_headers_before_decoding(tmp_path: Path, decodes, monkeypatch) -> None:
    # 12 images of 6000x6000 (36 Mpx each, under the 40 Mpx per-image limit): 432 Mpx in a few KB.
    from PIL import ImageFile

    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: loads.append(im.size) or real_load(im))
    files = {f"{c}/{i}.png": declared_png(6000, 6000) for c in ("a", "b") for i in range(6)}
    with pytest.raises(DataError, match=r"432 megapixels in total; at most 400 megapixels") as e:
        load(tmp_path, files, "binary")
    assert decodes == [] and loads == []  # refused from the headers: not one image's pixels read
    assert "400 megapixels" in uploads.limits_text()
    assert "5,000 images of 256×256" in str(e.value)


def test_jpeg_pixels_count_at_their_reduced_decode_scale(tmp_path: Path) -> None:
    """A phone photo is decoded at 1/8 scale when it is resized anyway: it costs 1/64 of its pixels."""
    limits = UploadLimits(max_total_pixels=2_000_000)
    photos = {f"{c}/{i}.jpg": jpeg((2000, 1500), 40 * i) for c in ("a", "b") for i in range(2)}  # 12 Mpx declared
    td = load(tmp_path, photos, "binary", limits)
    assert td.images.shape == (4, 96, 96, 3)
    (tmp_path / "p").mkdir()
    with pytest.raises(DataError, match="at most 2 megapixels"):  # the same pixels as PNG are decoded in full
        load(tmp_path / "p", {f"{c}/{i}.png": declared_png(2000, 1500) for c in ("a", "b") for i in range(2)},
             "binary", limits)


def test_the_time_budget_is_checked_inside_the_decode_loop(tmp_path: Path, monkeypatch, decodes) -> None:
    # A clock that jumps past the budget once 3 images are decoded: no timing, no CPU-speed dependence.
    monkeypatch.setattr("lib.data.limits._clock", lambda: 0.0 if len(decodes) < 3 else 1e9)
    outcome = upload(tmp_path, classes({"a": 8, "b": 8}), "binary")
    assert outcome.data is None
    assert f"more than {DEFAULT.max_seconds:g} s" in outcome.message and "fewer or smaller" in outcome.message
    assert len(decodes) == 3  # stopped at the next image, not after all 16
    assert list((tmp_path / "session").iterdir()) == []
    _assert_slots_free()


def _assert_slots_free() -> None:
    got = [uploads._EXTRACTING.acquire(blocking=False) for _ in range(uploads.EXTRACTION_SLOTS)]
    for ok in got:
        if ok:
            uploads._EXTRACTING.release()
    assert all(got), "an upload slot was not given back"


def test_a_cancelled_upload_stops_decoding_and_frees_its_slot(tmp_path: Path, decodes) -> None:
    outcome = upload(tmp_path, classes({"a": 8, "b": 8}), "binary", cancelled=lambda: len(decodes) >= 3)
    assert outcome.data is None
    assert "stopped" in outcome.message and "session ended" in outcome.message
    assert len(decodes) == 3
    assert list((tmp_path / "session").iterdir()) == []
    _assert_slots_free()


def test_an_upload_waiting_for_a_slot_gives_up_when_its_session_ends(tmp_path: Path, decodes) -> None:
    for _ in range(uploads.EXTRACTION_SLOTS):  # two other uploads hold both slots
        uploads._EXTRACTING.acquire()
    results: list[uploads.UploadOutcome] = []
    asked = []  # the session is there when the upload starts waiting, gone at the next look
    try:
        waiter = threading.Thread(target=lambda: results.append(
            upload(tmp_path, classes({"a": 2, "b": 2}), "binary", cancelled=lambda: asked.append(1) or len(asked) > 1)))
        waiter.start()
        waiter.join(30)  # a generous bound: it must not wait for the slots at all
        assert not waiter.is_alive()
    finally:
        for _ in range(uploads.EXTRACTION_SLOTS):
            uploads._EXTRACTING.release()
    assert results and results[0].data is None and "session ended" in results[0].message
    assert decodes == [] and len(asked) == 2  # it gave up while waiting, before extracting anything
    _assert_slots_free()


def test_deep_or_long_csv_file_names_are_refused_without_echoing_them(tmp_path: Path) -> None:
    deep = "d/" * 400 + "x.png"  # the finding's 1.6 KB zip held a deeper one: matching it was quadratic
    with pytest.raises(DataError, match="folders deep; at most 16") as e:
        load(tmp_path, csv_files(f"filename,value\n{deep},1\n" + "\n".join(f"images/im{i}.png,{i}" for i in range(6)), 6),
             "regression")
    short_and_clean(str(e.value), deep[:200])
    long = "x" * 5000 + ".png"
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="a name of 5,004 characters; at most 100") as e:
        load(tmp_path / "b", csv_files(f"filename,value\n{long},1\n" + "\n".join(f"images/im{i}.png,{i}" for i in range(6)), 6),
             "regression")
    short_and_clean(str(e.value), "x" * 100)


def test_many_bad_csv_rows_give_one_short_message(tmp_path: Path) -> None:
    ghosts = "\n".join(f"{'g' * 80}{i}.png,{i}" for i in range(3000))
    with pytest.raises(DataError, match=r"names 3,000 images that are not in the upload: .* and 2,995 more") as e:
        load(tmp_path, csv_files("filename,value\n" + ghosts, 4), "regression")
    short_and_clean(str(e.value), "g" * 70)


def test_deep_zip_entries_are_refused_before_extracting(tmp_path: Path) -> None:
    deep = "a/" * 1500 + "x.png"  # RecursionError in the CLI before
    for i, files in enumerate(({deep: png()} | classes({"c": 2, "d": 2}), {"a/" * 17 + "x.png": png()})):
        dest = tmp_path / f"dest{i}"
        with pytest.raises(DataError, match="folders deep; at most 16") as e:
            extract_zip(zip_bytes(files), dest)
        short_and_clean(str(e.value), "a/" * 50)
        assert list(dest.iterdir()) == []  # checked before anything was written
    outcome = upload(tmp_path, {deep: png()} | classes({"c": 2, "d": 2}), "binary")
    assert "folders deep" in outcome.message and "unexpected" not in outcome.message


def test_long_zip_entry_names_are_refused_before_extracting(tmp_path: Path) -> None:
    long = "n" * 300 + ".png"  # OSError: File name too long, before
    with pytest.raises(DataError, match="a name of 304 characters; at most 100") as e:
        extract_zip(zip_bytes(classes({"a": 2, "b": 2}) | {f"a/{long}": png()}), tmp_path / "d1")
    short_and_clean(str(e.value), long)
    assert list((tmp_path / "d1").iterdir()) == []
    path = "/".join(["f" * 60] * 6) + "/x.png"  # each name short, the path over 300 characters
    with pytest.raises(DataError, match=f"{len(path)} characters long; at most 300"):
        extract_zip(zip_bytes({path: png()}), tmp_path / "d2")
    outcome = upload(tmp_path, classes({"a": 2, "b": 2}) | {f"a/{long}": png()}, "binary")
    assert "at most 100" in outcome.message and "unexpected" not in outcome.message


def test_folder_entries_count_against_a_limit(tmp_path: Path) -> None:
    files: dict[str, bytes | None] = {f"empty{i}/": None for i in range(1_500)} | classes({"a": 2, "b": 2})
    with pytest.raises(DataError, match="1,502 folders; at most 1,000"):
        extract_zip(zip_bytes(files), tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []


def test_huge_hostile_names_are_clipped_in_messages(tmp_path: Path) -> None:
    evil = "../" + "z" * 20_000
    with pytest.raises(DataError, match="outside the archive") as e:
        extract_zip(zip_bytes({evil: png()}), tmp_path / "d")
    short_and_clean(str(e.value), "z" * 100)


# ---------------------------------------------------------------- finding 6: memory


def test_uniform_images_too_big_to_keep_are_resized_within_the_memory_budget(tmp_path: Path) -> None:
    limits = UploadLimits(image_size=16, max_decoded_bytes=8 * 64 * 64 * 3 - 1)  # one byte short of 64 px
    files = {f"{c}/{i}.png": png(20 * i, size=(64, 64)) for c in ("a", "b") for i in range(4)}
    td = load(tmp_path, files, "binary", limits)
    assert td.images.shape == (8, 16, 16, 3)  # the common 64x64 size would not fit: the default size instead
    assert any("0.1 MB" in n and "16x16" in n for n in td.notes), td.notes


def test_an_upload_over_the_memory_budget_is_refused_before_decoding(tmp_path: Path, decodes) -> None:
    limits = UploadLimits(image_size=16, max_decoded_bytes=500)  # 8 images: 720 B kept, 6 KB resized
    with pytest.raises(DataError, match=r"need 0.0 MB of memory; at most 0.0 MB"):
        load(tmp_path, classes({"a": 4, "b": 4}), "binary", limits)
    assert decodes == []


def test_the_default_memory_budgets_hold_the_largest_upload_the_other_limits_allow() -> None:
    biggest_resized = DEFAULT.max_images * DEFAULT.image_size ** 2 * 3
    assert biggest_resized <= DEFAULT.max_decoded_bytes <= DEFAULT.max_session_bytes
    text = uploads.limits_text()
    assert f"{DEFAULT.max_decoded_bytes // 2**20} MB" in text and "per session" in text


def test_the_page_states_every_new_limit() -> None:
    limits = UploadLimits(max_folders=1_234, max_path_depth=17, max_name_chars=111, max_path_chars=333,
                          max_label_chars=55, max_csv_bytes=7 * 2**20, max_seconds=42, max_total_pixels=123_000_000,
                          max_decoded_bytes=200 * 2**20, max_session_bytes=300 * 2**20)
    text = uploads.limits_text(limits)
    for fact in ("1,234 folders", "17 levels deep", "names of up to 111", "paths of up to 333 characters",
                 "longer than 55 characters", "CSV of up to 7 MB", "may take 42 s", "together 123 megapixels",
                 "fit in 200 MB of memory", "share 300 MB per session"):
        assert fact in text, fact


def test_a_session_keeps_its_uploads_within_its_budget() -> None:
    def td(task: str, name: str, n: int) -> uploads.TaskData:
        y = np.array([0, 1] * (n // 2), np.int32) if task != "regression" else np.arange(n, dtype=np.float32)
        return uploads.TaskData(name, task, np.zeros((n, 10, 10, 3), np.uint8), y, np.arange(n) % 4 == 0, ("a", "b"))

    limits = UploadLimits(max_session_bytes=10 * 10 * 3 * 25)  # 25 images' worth
    stored: dict = {}
    assert uploads.keep_upload(stored, td("binary", "first", 10), limits) == []
    assert uploads.keep_upload(stored, td("multiclass", "second", 10), limits) == []
    dropped = uploads.keep_upload(stored, td("regression", "third", 10), limits)  # 30 images: the oldest goes
    assert [d.dataset for d in dropped] == ["first"]
    assert list(stored) == ["multiclass", "regression"]
    message = uploads.dropped_message(dropped, limits)
    assert "first" in message and "binary" in message and "upload it again" in message
    # replacing a task's upload does not count the old one
    assert uploads.keep_upload(stored, td("regression", "third again", 10), limits) == []
    assert stored["regression"].dataset == "third again"


def test_the_server_refuses_uploads_over_the_limit_itself() -> None:
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == DEFAULT.max_upload_bytes  # Streamlit's unit: MB (2**20)


def test_the_janitor_frees_the_uploads_of_ended_sessions() -> None:
    now, connected, freed = [0.0], {"s1": True, "s2": True}, []
    janitor = uploads.SessionJanitor(lambda sid: connected[sid], grace_s=120, clock=lambda: now[0],
                                     release=freed.append)
    kept1, kept2 = {"binary": "big arrays"}, {"binary": "other arrays"}
    janitor.watch("s1", kept1)
    janitor.watch("s2", kept2)
    assert janitor.sweep() == 0
    connected["s1"] = connected["s2"] = False
    now[0] = 60
    assert janitor.sweep() == 0  # a network blip: Streamlit lets a session reconnect for a while
    connected["s2"] = True  # s2 came back
    now[0] = 150
    assert janitor.sweep() == 0  # s1 first seen gone at 60: not yet 120 s
    connected["s2"] = False  # s2 gone again at 150: its clock starts again
    now[0] = 181
    assert janitor.sweep() == 1
    assert kept1 == {} and kept2 == {"binary": "other arrays"} and freed == ["s1"]
    assert janitor.sweep() == 0  # released once


def test_the_streamlit_connection_check_follows_the_runtime(monkeypatch) -> None:
    """ui.sessions relies on Runtime.is_active_session: a closed tab's session is no longer active."""
    from streamlit.runtime import Runtime, RuntimeConfig
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.script_data import ScriptData

    from ui import sessions

    assert sessions.is_connected("no-runtime")  # no server (e.g. a script): never cancel

    class Client:
        def write_forward_msg(self, msg) -> None:
            pass

    async def run() -> tuple[bool, bool, bool]:
        monkeypatch.setattr(Runtime, "_instance", None)
        rt = Runtime(RuntimeConfig(script_path="x.py", media_file_storage=MemoryMediaFileStorage("/m"),
                                   uploaded_file_manager=MemoryUploadedFileManager("/u")))
        sid = rt._session_mgr.connect_session(client=Client(), script_data=ScriptData("x.py", False), user_info={})
        alive = sessions.is_connected(sid)
        rt._session_mgr.disconnect_session(sid)  # what closing the tab does (the websocket closed)
        gone = sessions.is_connected(sid)
        rt._session_mgr.close_session(sid)
        return alive, gone, sessions.is_connected("unknown")

    alive, gone, unknown = asyncio.run(run())
    assert alive and not gone and not unknown


# ---------------------------------------------------------------- finding 9: names


def test_class_folder_names_are_cleaned(tmp_path: Path) -> None:
    long = "k" * 100
    files = classes({"ca\nt": 2, "\u202edog\u202c": 2, long: 2, "two  \t spaces": 2})
    td = load(tmp_path, files, "multiclass")
    assert set(td.label_names) == {"ca t", "dog", "k" * 59 + "…", "two spaces"}
    assert len(max(td.label_names, key=len)) == DEFAULT.max_label_chars
    for text in (*td.label_names, td.description, *td.notes):
        assert not any(c in text for c in "\n\t\u202e\u202c"), text


def test_names_that_clean_to_the_same_or_to_nothing_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'cat' and 'cat\\\\u200f' both read 'cat'"):
        load(tmp_path, classes({"cat": 2, "cat\u200f": 2}), "multiclass")
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="name is empty once"):
        load(tmp_path / "b", classes({"dog": 2, "\u2066\u2069": 2}), "multiclass")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="the first 60 characters"):
        load(tmp_path / "c", classes({"p" * 70 + "1": 2, "p" * 70 + "2": 2}), "binary")


def test_csv_label_names_are_cleaned(tmp_path: Path) -> None:
    rows = "\n".join(f"images/im{i}.png,{i % 2},{int(i < 4)}" for i in range(8))
    td = load(tmp_path, csv_files("filename,r\u202eed,blue\n" + rows, 8), "multilabel")
    assert td.label_names == ("red", "blue")
    both = "c\u2066at;dog"
    rows = "\n".join(f"images/im{i}.png,{both if i % 2 else 'dog'}" for i in range(8))
    (tmp_path / "b").mkdir()
    td = load(tmp_path / "b", csv_files('filename,labels\n' + rows, 8), "multilabel")
    assert td.label_names == ("cat", "dog")
    rows = "\n".join(f"images/im{i}.png,{i}" for i in range(8))
    (tmp_path / "c").mkdir()
    td = load(tmp_path / "c", csv_files("filename,wei\u202eght\u200f (kg)\n" + rows, 8), "regression")
    assert td.label_names == ("weight",) and td.unit == "kg"
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="both read 'dog'"):
        both = "dog\u200e;cat"
        rows = "\n".join(f"images/im{i}.png,{both if i % 2 else 'dog'}" for i in range(8))
        load(tmp_path / "d", csv_files('filename,labels\n' + rows, 8), "multilabel")


def test_the_upload_display_name_is_cleaned() -> None:
    assert uploads.display_name("pets\u202egpj.zip") == "petsgpj"
    assert uploads.display_name("my\u2067 \npets\u061c.zip") == "my pets"
    assert uploads.display_name("\u202e\u202c.zip") == "upload"


# ---------------------------------------------------------------- finding 10: crashes and unclear messages


def test_every_image_with_its_own_label_still_gets_validation_images(tmp_path: Path) -> None:
    rows = "\n".join(f"images/im{i}.png,own{i}" for i in range(8))
    outcome = upload(tmp_path, csv_files("filename,labels\n" + rows, 8), "multilabel")
    assert outcome.data is not None, outcome.message
    n_val = int(outcome.data.is_val.sum())
    assert 1 <= n_val <= 7
    assert f"{8 - n_val:,} training, {n_val:,} validation" in outcome.message


def test_the_split_always_has_training_and_validation_images() -> None:
    paths = [loader.PurePosixPath(f"im{i}.png") for i in range(6)]
    y = np.eye(6, dtype=np.float32)  # every image its own label: every stratum has one member
    is_val = loader.stratified_split("multilabel", paths, y)
    assert 1 <= is_val.sum() <= 5


def test_errors_never_show_the_servers_paths(tmp_path: Path) -> None:
    files = classes({"a": 2, "b": 2}) | {"a/x.png": png(), "a/x.png/y.png": png()}  # a file and a folder alike
    session = tmp_path / "session"
    outcome = uploads.handle_upload(zip_bytes(files), "x.zip", "binary", session)
    assert outcome.data is None and "a/x.png" in outcome.message
    assert str(tmp_path) not in outcome.message and ".extract-" not in outcome.message, outcome.message


def test_a_failed_or_interrupted_load_leaves_no_extraction_folder(tmp_path: Path, monkeypatch) -> None:
    zpath = tmp_path / "one.zip"
    zpath.write_bytes(zip_bytes(classes({"cat": 3})))
    with pytest.raises(DataError, match="Only one class folder"):
        load_dataset(zpath, "binary", work_dir=tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []  # kept only when it loaded

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loader, "load_folder", interrupted)
    zpath.write_bytes(zip_bytes(classes({"cat": 3, "dog": 3})))
    with pytest.raises(KeyboardInterrupt):
        load_dataset(zpath, "binary", work_dir=tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []
    monkeypatch.setattr(uploads, "load_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        uploads.handle_upload(zpath.read_bytes(), "x.zip", "binary", tmp_path / "session")
    assert list((tmp_path / "session").iterdir()) == []
    _assert_slots_free()


def test_a_csv_field_over_the_csv_modules_limit_is_a_data_error(tmp_path: Path) -> None:
    rows = "\n".join(f"images/im{i}.png,{i}" for i in range(6)) + "\nimages/im0.png," + "9" * 200_000
    with pytest.raises(DataError, match="labels.csv cannot be read as CSV"):
        load(tmp_path, csv_files("filename,value\n" + rows, 6), "regression")

