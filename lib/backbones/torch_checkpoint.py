"""Read a PyTorch checkpoint (a state dict of tensors) into numpy arrays, without torch.

A ``.pth`` file is a pickle, and unpickling runs whatever callables it names. So the file's
sha256 is checked first, and the unpickler then admits only the handful of globals a plain
state dict needs; anything else is refused before it can run.

Two layouts are read:

* legacy (torch < 1.6, ``_use_new_zipfile_serialization=False``): five things back to back
  in one stream -- magic number, protocol version, sys info, the state-dict pickle, the
  list of storage keys -- followed by each storage as an int64 element count and raw bytes;
* zip (torch >= 1.6): ``<name>/data.pkl`` plus one raw record ``<name>/data/<key>`` per
  storage.

The older tar layout (torch < 0.4) is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
import tarfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib.common.errors import BackboneError

# sha256 of torchvision's ImageNet MobileNetV2 checkpoint `mobilenet_v2-b0353104.pth`
# (torchvision names its files after the first 8 hex digits of this digest).
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class -> numpy dtype (little-endian, as torch writes on x86/arm).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(BackboneError):
    """A checkpoint file that is unsafe, corrupt or of a layout we cannot read."""


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc.: only its dtype matters."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """A storage named by the pickle; its bytes are attached after the pickle is read."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _StorageView:
    """A legacy storage view: ``numel`` elements of ``root`` starting at ``offset``."""

    root: _Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns here: enough to slice the storage later."""

    storage: _Storage | _StorageView
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    # Storage bytes follow the pickle (legacy) or sit in other records (zip), so only
    # remember where the tensor lives; it is materialised once all storages are read.
    if not isinstance(storage, _Storage | _StorageView):
        raise CheckpointError("Checkpoint is malformed: a tensor does not point at a storage.")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None) -> Any:
    # nn.Parameter is just a tensor for our purposes.
    return data


# The only globals a state-dict pickle may name. Everything else is refused.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dt) for name, dt in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``_ALLOWED_GLOBALS`` and torch storage references."""

    def __init__(self, file: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"Refusing to load checkpoint: it references `{module}.{name}`, which a "
                "plain state dict never needs (only tensors, storages and OrderedDict are "
                "allowed). The file may be malicious or not a state dict."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError(f"Checkpoint is malformed: bad persistent id {pid!r}.")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise CheckpointError(f"Refusing to load checkpoint: persistent id kind {kind!r}.")
        # legacy: (storage, type, key, location, numel, view_metadata)
        # zip:    (storage, type, key, location, numel)
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise CheckpointError("Checkpoint is malformed: a storage has no known type.")
        key = str(key)
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, stype.dtype, int(numel))
        elif storage.dtype != stype.dtype:
            raise CheckpointError(f"Checkpoint is malformed: storage {key} has two dtypes.")
        if view is None:
            return storage
        _view_key, view_offset, view_numel = view
        return _StorageView(storage, int(view_offset), int(view_numel))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _unpickle(stream: io.BytesIO, storages: dict[str, _Storage]) -> Any:
    try:
        return _RestrictedUnpickler(stream, storages).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated stream, bad opcode, wrong arity ...
        raise CheckpointError(f"Checkpoint is corrupt: cannot unpickle it ({e}).") from e


def _read_legacy(blob: bytes) -> tuple[Any, dict[str, _Storage]]:
    stream = io.BytesIO(blob)
    storages: dict[str, _Storage] = {}
    # The three header pickles hold plain ints and a dict; read them restricted all the same.
    magic = _unpickle(stream, storages)
    protocol = _unpickle(stream, storages)
    sys_info = _unpickle(stream, storages)
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
        raise CheckpointError("Not a PyTorch checkpoint: its magic number or version is wrong.")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise CheckpointError("Big-endian PyTorch checkpoints are not supported.")
    result = _unpickle(stream, storages)
    keys = _unpickle(stream, storages)
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise CheckpointError("Checkpoint is malformed: its storage list does not match.")
    for key in map(str, keys):
        storage = storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise CheckpointError("Checkpoint is truncated: a storage is missing.")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CheckpointError(f"Checkpoint is malformed: storage {key} has the wrong size.")
        nbytes = numel * storage.dtype.itemsize
        raw = stream.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError("Checkpoint is truncated: a storage is cut short.")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return result, storages


def _read_zip(blob: bytes) -> tuple[Any, dict[str, _Storage]]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        pkl_names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+/data\.pkl", n)]
        if len(pkl_names) != 1:
            raise CheckpointError("Checkpoint zip has no single <name>/data.pkl record.")
        prefix = pkl_names[0][: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in zf.namelist() and zf.read(byteorder).strip() != b"little":
            raise CheckpointError("Big-endian PyTorch checkpoints are not supported.")
        storages: dict[str, _Storage] = {}
        result = _unpickle(io.BytesIO(zf.read(pkl_names[0])), storages)
        for key, storage in storages.items():
            try:
                raw = zf.read(f"{prefix}data/{key}")
            except KeyError:
                raise CheckpointError(f"Checkpoint zip lacks storage record {key}.") from None
            if len(raw) != storage.numel * storage.dtype.itemsize:
                raise CheckpointError(f"Checkpoint is malformed: storage {key} has wrong size.")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return result, storages


def _materialise(ref: _TensorRef) -> np.ndarray:
    """Copy a tensor out of its storage, refusing offsets or strides that reach outside it."""
    if isinstance(ref.storage, _StorageView):
        root, base, limit = ref.storage.root, ref.storage.offset, ref.storage.numel
    else:
        root, base, limit = ref.storage, 0, ref.storage.numel
    assert root.data is not None
    if base < 0 or base + limit > root.numel or len(ref.shape) != len(ref.stride):
        raise CheckpointError("Checkpoint is malformed: a tensor's layout is inconsistent.")
    if any(n < 0 for n in ref.shape) or any(s < 0 for s in ref.stride):
        raise CheckpointError("Checkpoint is malformed: negative tensor size or stride.")
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype=root.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if ref.offset < 0 or last >= limit:
        raise CheckpointError("Checkpoint is malformed: a tensor reaches outside its storage.")
    flat = root.data[base + ref.offset : base + last + 1]
    itemsize = root.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat, shape=ref.shape, strides=[s * itemsize for s in ref.stride], writeable=False
    )
    # Copy: native byte order, contiguous, and independent of the file's buffer.
    return np.array(view, dtype=root.dtype.newbyteorder("="), order="C", copy=True)


def read_checkpoint(path: str | Path, expected_sha256: str) -> dict[str, np.ndarray]:
    """Read a PyTorch state-dict checkpoint as ``{name: numpy array}``, without torch.

    The whole file's sha256 must equal ``expected_sha256`` (64 hex digits); it is checked
    on the very bytes that are then parsed, before any unpickling. Raises
    ``CheckpointError`` (a ``BackboneError``) when the file is missing, has the wrong
    digest, names any global outside the small allow-list, or is corrupt.
    """
    path = Path(path)
    expected = expected_sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise CheckpointError("expected_sha256 must be a full 64-digit hex sha256.")
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"Cannot read checkpoint {path}: {e}") from e
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"Refusing to load checkpoint {path}: its sha256 is {actual}, expected {expected}. "
            "The file is corrupt or not the one expected; reinstall the package that ships it."
        )

    if zipfile.is_zipfile(io.BytesIO(blob)):
        result, _ = _read_zip(blob)
    elif _is_tar(blob):
        raise CheckpointError("Tar-format PyTorch checkpoints (torch < 0.4) are not supported.")
    else:
        result, _ = _read_legacy(blob)

    state = _find_state_dict(result)
    return {str(name): _materialise(ref) for name, ref in state.items()}


def _is_tar(blob: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:"):
            return True
    except tarfile.TarError:
        return False


def _find_state_dict(obj: Any) -> dict[str, _TensorRef]:
    """The tensors of a state dict, also when wrapped as ``{"state_dict": {...}}``."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, _TensorRef)}
        if tensors:
            return tensors
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                return _find_state_dict(obj[wrapper])
    raise CheckpointError("Checkpoint holds no state dict of tensors.")
