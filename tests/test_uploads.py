"""User uploads: good layouts load, and every bad one is refused or noted with a message naming the problem."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.common.errors import DataError
from lib.data.archive import extract_zip
from lib.data.limits import UploadLimits
from lib.data.loader import load_dataset, load_folder

# ---------------------------------------------------------------- builders


def img(mode: str = "RGB", size: tuple[int, int] = (12, 10), value: int = 120, fmt: str = "PNG") -> bytes:
    """A small image file of the given PIL mode, encoded as fmt."""
    if mode == "I;16":
        im = Image.fromarray(np.full((size[1], size[0]), value * 257, np.uint16))
    else:
        colour = {"RGB": (value, 40, 200), "RGBA": (value, 40, 200, 128), "CMYK": (0, value, 40, 0)}.get(mode, value)
        im = Image.new(mode, size, colour)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost no data (opening it reads only the header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def make_zip(path: Path, files: dict[str, bytes | None]) -> Path:
    """A zip of name -> bytes (None makes a directory entry)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            if content is None:
                zf.writestr(zipfile.ZipInfo(name if name.endswith("/") else name + "/"), b"")
            else:
                zf.writestr(zipfile.ZipInfo(name), content)
    return path


def classes(spec: dict[str, int], top: str = "", size=(12, 10)) -> dict[str, bytes]:
    """Class folders with n distinct images each."""
    return {
        f"{top}{c}/{c}_{i:02d}.png": img(value=30 * k + i, size=size)
        for k, (c, n) in enumerate(spec.items())
        for i in range(n)
    }


DEFAULT_LIMITS = UploadLimits()


def load_zip(tmp_path: Path, files: dict[str, bytes | None], task: str, limits: UploadLimits = DEFAULT_LIMITS):
    zpath = make_zip(tmp_path / "upload.zip", files)
    root = extract_zip(zpath, tmp_path / "x", limits)
    return load_folder(root, task, limits)


def csv_upload(csv_text: str, names: list[str], top: str = "") -> dict[str, bytes]:
    files = {f"{top}images/{n}": img(value=10 + 7 * i) for i, n in enumerate(names)}
    files[f"{top}labels.csv"] = csv_text.encode()
    return files


NAMES = [f"im{i}.png" for i in range(8)]


# ---------------------------------------------------------------- good uploads


def test_binary_class_folders_under_a_top_folder(tmp_path):
    td = load_zip(tmp_path, classes({"cats": 5, "dogs": 4}, top="pets/"), "binary")
    assert td.dataset == "pets"
    assert td.label_names == ("cats", "dogs")
    assert td.images.shape == (9, 10, 12, 3) and td.images.dtype == np.uint8  # uniform size kept
    assert td.y.tolist() == [0] * 5 + [1] * 4
    assert set(td.y[td.is_val]) == {0, 1} and set(td.y[~td.is_val]) == {0, 1}
    assert any("Positive class (1) is 'dogs'" in n for n in td.notes)


def test_multiclass_with_mixed_sizes_is_resized(tmp_path):
    files = classes({"a": 4, "b": 3}) | classes({"c": 2}, size=(30, 20))
    td = load_zip(tmp_path, files, "multiclass")
    assert td.images.shape == (9, 96, 96, 3)
    assert td.label_names == ("a", "b", "c") and td.n_classes == 3
    assert all(td.is_val[td.y == k].sum() >= 1 for k in range(3))  # every class in validation
    assert all((~td.is_val[td.y == k]).sum() >= 1 for k in range(3))
    assert any("2 sizes" in n and "96x96" in n for n in td.notes)


def test_split_depends_on_file_names_not_zip_order(tmp_path):
    files = classes({"a": 12, "b": 9})
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = load_zip(tmp_path / "one", files, "binary")
    second = load_zip(tmp_path / "two", dict(reversed(list(files.items()))), "binary")
    assert first.fingerprint == second.fingerprint
    assert first.is_val.sum() == 3 + 2  # round(25%) of each class


def test_multilabel_zero_one_columns(tmp_path):
    rows = ["filename,cat,dog,car"] + [f"{n},{i % 2},{int(i < 4)},{int(i % 3 == 0)}" for i, n in enumerate(NAMES)]
    td = load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "multilabel")
    assert td.label_names == ("cat", "dog", "car")
    assert td.y.shape == (8, 3) and td.y.dtype == np.float32
    assert td.y[:, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert td.is_val.sum() >= 1


def test_multilabel_semicolon_names_and_never_positive_column(tmp_path):
    rows = ["filename,labels"] + [f"{n},{'cat;dog' if i % 2 else 'dog'}" for i, n in enumerate(NAMES[:6])] + [f"{NAMES[6]},"]
    td = load_zip(tmp_path, csv_upload("\n".join(rows), NAMES[:7]), "multilabel")
    assert td.label_names == ("cat", "dog")
    assert td.y.sum(axis=0).tolist() == [3, 6]
    assert any("1 image with no label" in n for n in td.notes)

    rows = ["filename,cat,dog,bird"] + [f"{n},{i % 2},1,0" for i, n in enumerate(NAMES)]
    (tmp_path / "b").mkdir()
    td = load_zip(tmp_path / "b", csv_upload("\n".join(rows), NAMES), "multilabel")
    assert any("never present" in n and "bird" in n for n in td.notes)
    assert any("every image" in n and "dog" in n for n in td.notes)


def test_regression_with_unit_in_header_and_bare_file_names(tmp_path):
    rows = ["filename;weight (kg)"] + [f"{n};{12.5 * (i + 1)}" for i, n in enumerate(NAMES)]  # Excel-style ';'
    td = load_zip(tmp_path, csv_upload("\n".join(rows), NAMES, top="set/"), "regression")
    assert td.dataset == "set"
    assert td.label_names == ("weight",) and td.unit == "kg"
    assert td.y.dtype == np.float32 and td.y.max() == 100.0
    assert 1 <= td.is_val.sum() <= 4


def test_load_dataset_takes_a_zip_or_a_folder(tmp_path):
    zpath = make_zip(tmp_path / "animals.zip", classes({"cats": 3, "dogs": 3}))
    td = load_dataset(zpath, "binary", work_dir=tmp_path / "work")
    assert td.dataset == "animals" and len(td.y) == 6
    assert len(list((tmp_path / "work").iterdir())) == 1  # extracted copy kept under work_dir
    assert load_dataset(zpath, "binary").fingerprint == td.fingerprint  # temporary extraction
    folder = next((tmp_path / "work").iterdir())
    assert load_dataset(folder, "binary").fingerprint == td.fingerprint
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.txt is not a zip archive"):
        load_dataset(tmp_path / "notes.txt", "binary")


def test_os_clutter_is_ignored(tmp_path):
    files = classes({"a": 2, "b": 2}) | {
        "__MACOSX/a/._a_00.png": b"junk",
        "a/.DS_Store": b"junk",
        "b/readme.txt": b"notes",
    }
    td = load_zip(tmp_path, files, "binary")
    assert len(td.y) == 4
    assert any("readme.txt" in n and "without an image extension" in n for n in td.notes)


# ---------------------------------------------------------------- bad images


def test_corrupt_and_fake_images_are_skipped_and_named(tmp_path):
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(noisy, "PNG")
    cut = noisy.getvalue()[: len(noisy.getvalue()) // 2]  # header intact, pixel data cut off
    files = classes({"a": 3, "b": 3}) | {"a/broken.png": cut, "b/fake.png": b"this is not a png"}
    td = load_zip(tmp_path, files, "binary")
    assert len(td.y) == 6
    note = next(n for n in td.notes if n.startswith("Skipped 2 files"))
    assert "a/broken.png (damaged" in note and "b/fake.png (not an image)" in note


def test_nothing_readable_is_refused(tmp_path):
    files = {"a/x.png": b"nope", "a/y.png": b"nope", "b/z.jpg": b"nope", "b/w.jpg": b"nope"}
    with pytest.raises(DataError, match=r"None of the 4 image files could be read: a/x.png \(not an image\)"):
        load_zip(tmp_path, files, "binary")


def test_skipped_files_leaving_one_image_in_a_class_are_refused(tmp_path):
    files = classes({"a": 3, "b": 1}) | {"b/bad.png": b"garbage"}
    with pytest.raises(DataError, match=r"at least 2 usable images.*'b' \(1\)"):
        load_zip(tmp_path, files, "binary")


def test_modes_are_converted_to_rgb_and_counted(tmp_path):
    files = {
        "a/gray1.png": img("L"),
        "a/gray2.png": img("L", value=30),
        "a/alpha.png": img("RGBA"),
        "b/deep.png": img("I;16", value=200),
        "b/print.jpg": img("CMYK", fmt="JPEG"),
        "b/indexed.png": img("P"),
    }
    td = load_zip(tmp_path, files, "binary")
    assert td.images.shape == (6, 10, 12, 3) and td.images.dtype == np.uint8
    notes = " | ".join(td.notes)
    assert "2 images grayscale" in notes
    assert "1 image with transparency, placed on a white background" in notes
    assert "1 image 16-bit, scaled to 8-bit" in notes
    assert "1 image CMYK" in notes
    assert "1 image palette" in notes
    deep = td.images[td.y == 1][0]  # b/deep.png sorts first in class b
    assert abs(int(deep[0, 0, 0]) - 200) <= 1  # 16-bit value 200*257 scaled back, not clipped to 255
    alpha = td.images[0]  # a/alpha.png sorts first: half-transparent on white gets lighter
    assert alpha[0, 0, 0] > 120 and alpha[0, 0, 1] > 40


@pytest.mark.parametrize(
    ("size", "expect"),
    [((20000, 20000), r"far too large to load \(over 179 megapixels\)"), ((7000, 7000), "7000x7000 = 49 megapixels")],
)
def test_huge_pixel_images_are_refused_by_name(tmp_path, size, expect):
    files = classes({"a": 2, "b": 2}) | {"b/huge.png": png_header_only(*size)}
    with pytest.raises(DataError, match=rf"b/huge.png is {expect}; images may have at most 40 megapixels"):
        load_zip(tmp_path, files, "binary")


def test_exif_rotation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(buf, "JPEG", exif=exif)
    files = {"a/r1.jpg": buf.getvalue(), "a/r2.jpg": buf.getvalue(), "b/p1.png": img(size=(10, 20)), "b/p2.png": img(size=(10, 20))}
    td = load_zip(tmp_path, files, "binary")
    assert td.images.shape == (4, 20, 10, 3)  # all portrait: one size, kept


def test_csv_inside_the_image_folder_may_name_paths_from_the_root(tmp_path):
    files = {f"data/images/{n}": img(value=10 + 7 * i) for i, n in enumerate(NAMES)}
    files["data/images/labels.csv"] = "\n".join(["filename,value"] + [f"images/{n},{i}" for i, n in enumerate(NAMES)]).encode()
    td = load_zip(tmp_path, files, "regression")
    assert td.y.tolist() == list(range(8))


def test_extract_accepts_an_open_file(tmp_path):
    zpath = make_zip(tmp_path / "a.zip", classes({"cats": 2, "dogs": 2}))
    with open(zpath, "rb") as f:
        root = extract_zip(f, tmp_path / "dest")
    assert sorted(p.name for p in root.iterdir()) == ["cats", "dogs"]


def test_csv_names_match_case_insensitively(tmp_path):
    rows = ["filename,value"] + [f"IMAGES/{n.upper()},{i}" for i, n in enumerate(NAMES)]
    td = load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")
    assert td.y.tolist() == list(range(8))


# ---------------------------------------------------------------- bad class layouts


def test_empty_class_folder(tmp_path):
    with pytest.raises(DataError, match="Class folder 'birds' has no images"):
        load_zip(tmp_path, classes({"cats": 2, "dogs": 2}) | {"birds/": None}, "multiclass")


def test_single_class(tmp_path):
    with pytest.raises(DataError, match=r"Only one class folder was found \('cats'\); the binary task needs exactly 2"):
        load_zip(tmp_path, classes({"cats": 4}, top="data/"), "binary")


def test_class_with_one_image(tmp_path):
    with pytest.raises(DataError, match=r"too few in: 'dogs' \(1\)"):
        load_zip(tmp_path, classes({"cats": 3, "dogs": 1}), "multiclass")


def test_binary_with_three_classes(tmp_path):
    with pytest.raises(DataError, match="exactly 2 class folders; found 3: a, b, c. Choose the multiclass task"):
        load_zip(tmp_path, classes({"a": 2, "b": 2, "c": 2}), "binary")


def test_class_task_on_a_csv_upload(tmp_path):
    with pytest.raises(DataError, match="needs one folder per class.*labels.csv"):
        load_folder_from(tmp_path, {"labels.csv": b"filename,x\n", "a.png": img(), "b.png": img()}, "binary")


def load_folder_from(tmp_path: Path, files: dict[str, bytes], task: str):
    """Write files to a plain folder (not a zip) and load it."""
    root = tmp_path / "folder"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return load_folder(root, task)


# ---------------------------------------------------------------- bad label CSVs


def test_images_missing_from_the_csv_are_noted(tmp_path):
    rows = ["filename,value"] + [f"{n},{i}" for i, n in enumerate(NAMES[:6])]
    td = load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")
    assert len(td.y) == 6
    assert any("2 images with no row in labels.csv left out: images/im6.png, images/im7.png" in n for n in td.notes)


def test_unknown_file_names_are_refused_by_name(tmp_path):
    rows = ["filename,value"] + [f"{n},{i}" for i, n in enumerate(NAMES)] + ["ghost.png,3", "images/typo.pgn,4"]
    with pytest.raises(DataError, match=r"names 2 images that are not in the upload: ghost.png \(line 10\), images/typo.pgn \(line 11\)"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")


def test_non_numeric_regression_targets(tmp_path):
    rows = ["filename,value"] + [f"{n},{'heavy' if i == 2 else i}" for i, n in enumerate(NAMES)]
    with pytest.raises(DataError, match=r"must be numbers; 1 row is not: im2.png \(line 4\): 'heavy'"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")


def test_nan_and_empty_regression_targets(tmp_path):
    rows = ["filename,value"] + [f"{n},{ {3: 'nan', 5: ''}.get(i, i) }" for i, n in enumerate(NAMES)]
    with pytest.raises(DataError, match=r"2 rows are empty, NaN or infinite: im3.png \(line 5\): 'nan', im5.png \(line 7\): ''"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")


def test_constant_and_multi_column_regression(tmp_path):
    rows = ["filename,value"] + [f"{n},5" for n in NAMES]
    with pytest.raises(DataError, match="Every regression target in 'value' is 5"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")
    rows = ["filename,a,b"] + [f"{n},1,2" for n in NAMES]
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"one numeric target column; labels.csv has 2 \(a, b\)"):
        load_zip(tmp_path / "b", csv_upload("\n".join(rows), NAMES), "regression")


def test_csv_without_filename_column(tmp_path):
    rows = ["image_name,value"] + [f"{n},{i}" for i, n in enumerate(NAMES)]
    with pytest.raises(DataError, match="needs a 'filename' column naming each image; its header is: image_name, value"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "regression")


def test_multilabel_bad_cells_and_duplicates(tmp_path):
    rows = ["filename,cat,dog"] + [f"{n},{'yes' if i == 1 else 0},1" for i, n in enumerate(NAMES)]
    with pytest.raises(DataError, match=r"must hold 0 or 1.*line 3, 'cat': 'yes'"):
        load_zip(tmp_path, csv_upload("\n".join(rows), NAMES), "multilabel")
    rows = ["filename,cat,dog", "im0.png,1,0", "images/im0.png,0,1"]
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"lists 'images/im0.png' twice \(lines 2 and 3\)"):
        load_zip(tmp_path / "b", csv_upload("\n".join(rows), NAMES), "multilabel")


def test_label_task_without_a_csv(tmp_path):
    with pytest.raises(DataError, match="The regression task needs a labels CSV"):
        load_zip(tmp_path, classes({"a": 2, "b": 2}), "regression")


# ---------------------------------------------------------------- hostile zips


def _raw_zip(path: Path, entries: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, content in entries:
            zf.writestr(info, content)
    return path


def test_parent_path_is_refused_and_nothing_escapes(tmp_path):
    zpath = _raw_zip(tmp_path / "evil.zip", [(zipfile.ZipInfo("a/ok.png"), img()), (zipfile.ZipInfo("../escape.png"), img())])
    with pytest.raises(DataError, match=r"points outside the archive, '../escape.png'"):
        extract_zip(zpath, tmp_path / "dest")
    assert not (tmp_path / "escape.png").exists()
    assert list((tmp_path / "dest").iterdir()) == []  # checked before anything was written


def test_absolute_path_is_refused(tmp_path):
    zpath = _raw_zip(tmp_path / "evil.zip", [(zipfile.ZipInfo("/tmp/abs.png"), img())])
    with pytest.raises(DataError, match=r"absolute path, '/tmp/abs.png'"):
        extract_zip(zpath, tmp_path / "dest")
    zpath = _raw_zip(tmp_path / "win.zip", [(zipfile.ZipInfo("C:\\Users\\x.png"), img())])
    with pytest.raises(DataError, match="absolute path"):
        extract_zip(zpath, tmp_path / "dest2")


def test_symlink_entry_is_refused(tmp_path):
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zpath = _raw_zip(tmp_path / "evil.zip", [(zipfile.ZipInfo("cats/a.png"), img()), (link, b"/etc/passwd")])
    with pytest.raises(DataError, match=r"symbolic link, 'cats/link.png'"):
        extract_zip(zpath, tmp_path / "dest")


def test_zip_bomb_declared_size_is_refused_before_extracting(tmp_path):
    zpath = make_zip(tmp_path / "bomb.zip", {"a/x.png": img()})
    raw = bytearray(zpath.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # central directory header: uncompressed size at +24
    raw[cd + 24: cd + 28] = struct.pack("<I", 3_000_000_000)
    with pytest.raises(DataError, match=r"would unpack to 2,861.0 MB; at most 200.0 MB"):
        extract_zip(bytes(raw), tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_entry_larger_than_the_limit_when_unpacked(tmp_path):
    zpath = make_zip(tmp_path / "zeros.zip", {"a/zeros.png": b"\0" * 3_000_000})  # deflates to a few KB
    with pytest.raises(DataError, match="would unpack to 2.9 MB; at most 1.0 MB"):
        extract_zip(zpath, tmp_path / "dest", UploadLimits(max_uncompressed_bytes=2**20))


def test_entry_that_lies_about_its_size_is_refused(tmp_path):
    zpath = make_zip(tmp_path / "liar.zip", {"a/x.png": b"\0" * 100_000})
    raw = bytearray(zpath.read_bytes())
    cd = raw.index(b"PK\x01\x02")
    raw[cd + 24: cd + 28] = struct.pack("<I", 10)
    with pytest.raises(DataError, match="'a/x.png'"):
        extract_zip(bytes(raw), tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []  # partial output removed


def test_too_many_files(tmp_path):
    files = {f"a/{i}.png": b"" for i in range(5_001)}
    with pytest.raises(DataError, match="holds 5,001 files; at most 5,000 are accepted"):
        extract_zip(make_zip(tmp_path / "many.zip", files), tmp_path / "dest")
    clutter = {f"__MACOSX/a/._{i}.png": b"" for i in range(5_000)} | {"a/1.png": b"", "b/2.png": b""}
    root = extract_zip(make_zip(tmp_path / "mac.zip", clutter), tmp_path / "mac")  # clutter is not counted
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]


def test_upload_too_big_and_not_a_zip(tmp_path):
    with pytest.raises(DataError, match="The upload is 0.0 MB; at most 0.0 MB"):
        extract_zip(b"x" * 200, tmp_path / "dest", UploadLimits(max_upload_bytes=100))
    with pytest.raises(DataError, match="not a valid zip archive"):
        extract_zip(b"definitely not a zip", tmp_path / "dest")


def test_empty_zip(tmp_path):
    with pytest.raises(DataError, match="The zip is empty"):
        extract_zip(make_zip(tmp_path / "e.zip", {"__MACOSX/._x": b"junk"}), tmp_path / "dest")


def test_too_many_images(tmp_path):
    with pytest.raises(DataError, match="has 6 images; at most 5 are accepted"):
        load_zip(tmp_path, classes({"a": 3, "b": 3}), "binary", UploadLimits(max_images=5))


def test_limits_are_frozen():
    with pytest.raises(AttributeError):
        UploadLimits().max_files = 10  # type: ignore[misc]
    assert UploadLimits().max_image_pixels == 40_000_000
