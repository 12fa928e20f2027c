"""The multilabel and regression layout: one labels CSV beside the images, parsed, each row matched to
an image (forgiving the usual slips of hand-written CSVs), and turned into targets.

The layout itself is described in `lib.data.loader`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from lib.common.errors import DataError
from lib.common.text import clean_name
from lib.data.labels import _is_image_name, _Items, _label_names
from lib.data.limits import UploadLimits, Watch, _check_path
from lib.data.messages import _Examples, _listing, _mb, _plural, _q, _show, _why

FILENAME_COLUMNS = ("filename", "file", "file_name", "image", "path")  # accepted, case-insensitive


@dataclass
class _Csv:
    path: PurePosixPath  # relative to the data root
    columns: list[str]  # label column headers as written (stripped), without the filename column
    rows: list[tuple[int, PurePosixPath, list[str]]]  # (line number, image path from root, label cells)
    notes: list[str]

    @property
    def name(self) -> str:
        """The CSV's path as messages show it."""
        return _show(self.path)


def _pick_csv(files: list[PurePosixPath], task: str) -> PurePosixPath:
    csvs = [f for f in files if f.suffix.lower() == ".csv"]
    if not csvs:
        example = "filename,cat,dog" if task == "multilabel" else "filename,weight"
        raise DataError(
            f"The {task} task needs a labels CSV next to the images (e.g. labels.csv with a header "
            f"like `{example}`); none was found. Class folders are only read for binary and multiclass."
        )
    if len(csvs) == 1:
        return csvs[0]
    named = sorted((f for f in csvs if f.name.lower() == "labels.csv"), key=lambda f: len(f.parts))
    if named:
        return named[0]
    raise DataError(f"Found {len(csvs)} CSV files ({_listing([_show(f) for f in csvs])}); name the labels file labels.csv.")


def _csv_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # Excel's UTF-8 export starts with a BOM
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _delimiter(header: str) -> str:
    """',' unless the header uses tabs or ';' instead (European Excel exports use ';')."""
    for sep in (",", "\t", ";"):
        if sep in header:
            return sep
    return ","


def _clean_name(cell: str) -> PurePosixPath | None:
    """A CSV file name as a relative path; None if it is absolute or leaves the folder."""
    name = cell.strip().replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


class _NameIndex:
    """Finds the image a CSV cell names, forgiving the usual slips of hand-written CSVs.

    Tried in order: relative to the CSV's folder, then to the data root (each
    exactly, then ignoring case), and a bare file name unique in the upload.
    """

    def __init__(self, images: list[PurePosixPath]) -> None:
        self.images = set(images)
        lower = Counter(str(p).lower() for p in images)
        self.by_lower = {str(p).lower(): p for p in images if lower[str(p).lower()] == 1}
        names = Counter(p.name for p in images)
        self.by_name = {p.name: p for p in images if names[p.name] == 1}

    def find(self, rel: PurePosixPath, csv_dir: PurePosixPath) -> PurePosixPath | None:
        # Leading folders are dropped one by one: a CSV written from the parent folder
        # ("images/a.png") still finds a.png when the upload's root is images/ itself.
        # Quadratic in the depth, which _check_path bounds (UploadLimits.max_path_depth).
        for k in range(len(rel.parts)):
            tail = PurePosixPath(*rel.parts[k:])
            for c in (csv_dir / tail, tail):
                if c in self.images:
                    return c
                if str(c).lower() in self.by_lower:
                    return self.by_lower[str(c).lower()]
        return self.by_name.get(rel.name) if len(rel.parts) == 1 else None


def _regression_columns_error(where: str, columns: list[str]) -> DataError:
    return DataError(
        f"The regression task reads one numeric target column; {where} has {len(columns):,} "
        f"({_listing([_show(c) for c in columns])}). Keep only filename and the target."
    )


def _read_csv(root: Path, files: list[PurePosixPath], task: str, limits: UploadLimits, watch: Watch) -> _Csv:
    """Parse the labels CSV and match every row to an image file; refuse bad or unknown rows."""
    csv_rel = _pick_csv(files, task)
    where = _show(csv_rel)
    size = (root / csv_rel).stat().st_size
    if size > limits.max_csv_bytes:
        raise DataError(
            f"{where} is {_mb(size)}; a labels CSV may be at most {_mb(limits.max_csv_bytes)}. Keep one short row per image."
        )
    text = _csv_text((root / csv_rel).read_bytes())
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{where} is empty; it needs a header line such as `filename,label`.")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(lines[0]))
    try:
        header = [h.strip() for h in next(reader)]
        lower = [h.lower() for h in header]
        fcol = next((lower.index(c) for c in FILENAME_COLUMNS if c in lower), None)
        if fcol is None:
            raise DataError(
                f"{where} needs a 'filename' column naming each image; its header is: "
                f"{_listing([_show(h) for h in header], 10)}."
            )
        label_cols = [i for i, h in enumerate(header) if i != fcol and h]
        if not label_cols:
            raise DataError(f"{where} has no label column besides {_q(header[fcol])}.")
        columns = [header[i] for i in label_cols]
        if task == "multilabel" and len(columns) > limits.max_classes:  # before reading a cell of them
            raise DataError(
                f"{where} has {len(columns):,} label columns; at most {limits.max_classes} labels are supported. "
                "Keep fewer label columns."
            )
        if task == "regression" and len(columns) != 1:
            raise _regression_columns_error(where, columns)

        index = _NameIndex([f for f in files if _is_image_name(f)])
        rows, seen = [], {}
        unknown, bad_names, short = _Examples(), _Examples(), _Examples()  # counted; only the first few kept
        for n, row in enumerate(reader):
            if n % 256 == 0:
                watch.check()
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) < len(header):
                short.add(f"line {line:,}")
                continue
            cell = row[fcol].strip()
            rel = _clean_name(cell)
            if rel is None:
                bad_names.add(f"line {line:,}: {_q(cell)}")
                continue
            _check_path(rel.parts, f"{where} line {line:,}: the file name {_q(cell)}", limits)
            match = index.find(rel, csv_rel.parent)
            if match is None:
                unknown.add(f"{_show(cell)} (line {line:,})")
                continue
            if match in seen:
                raise DataError(f"{where} lists {_q(cell)} twice (lines {seen[match]:,} and {line:,}); keep one row per image.")
            seen[match] = line
            rows.append((line, match, [row[i].strip() for i in label_cols]))
    except csv.Error as e:  # e.g. a field over the csv module's 128 KB limit, or a NUL byte
        raise DataError(
            f"{where} cannot be read as CSV (line {reader.line_num:,}: {_why(e)}). "
            "Save it again as plain CSV, one short row per image."
        ) from e

    if short:
        raise DataError(f"{where} has rows with fewer cells than its header ({short.listing()}); fill in every column.")
    if bad_names:
        raise DataError(
            f"{where} has empty, absolute or '..' file names ({bad_names.listing()}); "
            "use paths relative to the CSV's folder."
        )
    if unknown:
        raise DataError(
            f"{where} names {_plural(len(unknown), 'image')} that {'is' if len(unknown) == 1 else 'are'} not in the upload: "
            f"{unknown.listing()}. Fix the file names or delete those rows."
        )
    notes = []
    unlisted = sorted(_show(p) for p in index.images - set(seen))
    if unlisted:
        notes.append(f"{_plural(len(unlisted), 'image')} with no row in {where} left out: {_listing(unlisted)}.")
    if not rows:
        raise DataError(f"{where} has no data rows; add one row per image.")
    return _Csv(csv_rel, columns, rows, notes)


def _is_binary_cell(v: str) -> bool:
    return v.lower() in ("0", "1", "0.0", "1.0", "true", "false")


def _multilabel_items(table: _Csv, limits: UploadLimits) -> _Items:
    """multilabel: 0/1 columns, or one column of ';'-separated label names."""
    cells = [r[2] for r in table.rows]
    if len(table.columns) == 1:
        col = clean_name(table.columns[0], limits.max_label_chars)
        if all(_is_binary_cell(c[0]) for c in cells):
            raise DataError(
                f"{table.name} has a single 0/1 column ({col!r}); multilabel needs at least 2 labels. "
                "Add one 0/1 column per label, or use the binary task."
            )
        row_labels: list[set[str]] = []
        every: set[str] = set()
        for c in cells:  # counted as they are read: a million names must not become a million columns
            labels = {t.strip() for t in c[0].split(";")} - {""}
            every |= labels
            if len(every) > limits.max_classes:
                raise DataError(
                    f"{table.name} names more than {limits.max_classes} different labels in {col!r}; at most "
                    f"{limits.max_classes} labels are supported. Use fewer labels."
                )
            row_labels.append(labels)
        written = sorted(every)
        clean = dict(zip(written, _label_names(written, "label", limits), strict=True))
        names = sorted(clean.values())
        if len(names) < 2:
            raise DataError(
                f"{table.name} names fewer than 2 different labels in {col!r}; multilabel needs at "
                "least 2 (write several as `cat;dog`)."
            )
        column = {n: j for j, n in enumerate(names)}
        y = np.zeros((len(cells), len(names)), np.float32)
        for i, labels in enumerate(row_labels):
            y[i, [column[clean[t]] for t in labels]] = 1.0
        how = f"';'-separated names in column {col!r}"
    else:
        names = _label_names(table.columns, "label column", limits)
        bad = _Examples()
        for line, _, row in table.rows:
            for col, v in zip(names, row, strict=True):
                if not _is_binary_cell(v):
                    bad.add(f"line {line:,}, {col!r}: {_q(v)}")
        if bad:
            raise DataError(
                f"Multilabel columns in {table.name} must hold 0 or 1 (or a single column of ';'-separated "
                f"label names); found: {bad.listing()}."
            )
        y = np.array([[float(v.lower() in ("1", "1.0", "true")) for v in c] for c in cells], np.float32)
        how = "one 0/1 column per label"
    notes = list(table.notes)
    positives = y.sum(axis=0)
    never = [n for n, k in zip(names, positives, strict=True) if k == 0]
    always = [n for n, k in zip(names, positives, strict=True) if k == len(y)]
    if never:
        notes.append(f"Label{'s' if len(never) > 1 else ''} never present in any image: {_listing(never)}; nothing to learn for them.")
    if always:
        notes.append(f"Label{'s' if len(always) > 1 else ''} present in every image: {_listing(always)}.")
    empty = int((y.sum(axis=1) == 0).sum())
    if empty:
        notes.append(f"{_plural(empty, 'image')} with no label at all (kept: 'none of these' is a valid answer).")
    desc = f"{len(names)} labels ({how}): {_listing(list(names), 10)}."
    return _Items([r[1] for r in table.rows], y, tuple(names), "", desc, notes)


def _unit_from_header(header: str) -> tuple[str, str]:
    """'weight (kg)' or 'weight [kg]' -> ('weight', 'kg'); otherwise (header, '')."""
    m = re.fullmatch(r"\s*(.*?)\s*[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*", header)
    return (m.group(1) or header, m.group(2)) if m else (header, "")


def _regression_items(table: _Csv, limits: UploadLimits) -> _Items:
    """regression: one numeric column, finite everywhere, not constant."""
    if len(table.columns) != 1:
        raise _regression_columns_error(table.name, table.columns)
    col = clean_name(table.columns[0])  # uncut, so that a unit at its end is still found
    if not col:
        raise DataError(
            f"The target column's name is empty once control and invisible characters are removed "
            f"({_q(table.columns[0])}); rename it."
        )
    values, not_numbers, not_finite = [], _Examples(), _Examples()
    for line, path, (cell,) in table.rows:
        where = f"{_show(path.name)} (line {line:,}): {_q(cell)}"
        try:
            v = float(cell) if cell else math.nan  # an empty cell is a missing target
        except ValueError:
            not_numbers.add(where)
            continue
        if math.isfinite(v) and abs(v) < 1e30:  # beyond that, float32 (what training uses) overflows
            values.append(v)
        else:
            not_finite.add(where)
    if not_numbers:
        raise DataError(
            f"Regression targets in {_q(col)} must be numbers; {_plural(len(not_numbers), 'row')} "
            f"{'is' if len(not_numbers) == 1 else 'are'} not: {not_numbers.listing()}. "
            "Fix or delete those rows (use '.' as the decimal point)."
        )
    if not_finite:
        raise DataError(
            f"Regression targets in {_q(col)} must be finite numbers; {_plural(len(not_finite), 'row')} "
            f"{'is' if len(not_finite) == 1 else 'are'} empty, NaN or infinite: {not_finite.listing()}. Fix or delete those rows."
        )
    y = np.array(values, np.float32)
    if np.all(y == y[0]):
        raise DataError(f"Every regression target in {_q(col)} is {values[0]:g}; there is nothing to learn.")
    name, unit = _unit_from_header(col)
    name, unit = clean_name(name, limits.max_label_chars), clean_name(unit, limits.max_label_chars)
    desc = f"{name} from {table.name}, {y.min():g} to {y.max():g}{' ' + unit if unit else ''}."
    return _Items([r[1] for r in table.rows], y, (name,), unit, desc, list(table.notes))
