"""Checkpoints: ``gc.train.Saver().save(sess, "model.npz")`` and ``.restore(sess, "model.npz")``.

A checkpoint is a plain ``.npz`` (a zip of ``.npy`` files): one array per variable under its name, plus a
JSON metadata entry (format version, names, shapes, dtypes) stored as a uint8 array. No pickle is written
or accepted. Saving writes a temporary file next to the target, syncs it to disk and renames it over the
target, so a crash mid-save leaves the previous checkpoint intact. Restoring checks everything (the file,
its metadata, every name, shape and dtype) before it sets any variable: a rejected restore changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, CheckpointError, GraphError
from graphc.graph.types import format_shape
from graphc.ops.state import Variable, global_variables
from graphc.runtime.session import Session

__all__ = ["CheckpointError", "Saver"]

FORMAT_VERSION = 1
METADATA_KEY = "__graphc_checkpoint__"
# what a damaged or foreign file raises inside np.load / zipfile / the npy reader
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError)


class Saver:
    """Saves and restores the values of ``var_list`` (default: every variable of the default graph, at the
    time the Saver is made — make it after the model and optimizer, whose slots are variables too)."""

    def __init__(self, var_list: Sequence[Variable] | None = None) -> None:
        self.var_list = list(global_variables() if var_list is None else var_list)
        for variable in self.var_list:
            if not isinstance(variable, Variable):
                raise GraphError(f"Saver: var_list must hold gc.Variables, got {variable!r}")
        names = [v.name for v in self.var_list]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated or METADATA_KEY in names:
            raise ArgumentError(f"Saver: variable names must be unique and not {METADATA_KEY!r}: {duplicated}")

    def save(self, sess: Session, path: str | os.PathLike) -> str:
        """Write the variables' current values to ``path`` (".npz" appended if missing), atomically; returns
        the path written."""
        path = _npz_path(path)
        values = sess.run(self.var_list)
        arrays = {v.name: np.array(value, order="C") for v, value in zip(self.var_list, values)}
        arrays[METADATA_KEY] = _encode_metadata(arrays)
        _write_atomically(path, arrays)
        return path

    def restore(self, sess: Session, path: str | os.PathLike) -> None:
        """Set the variables to the values saved in ``path``; raises CheckpointError (and changes no variable)
        when the file is missing or damaged, or its names, shapes or dtypes differ from the variables'."""
        path = _npz_path(path)
        arrays = _read_checkpoint(path)
        expected = {v.name: v for v in self.var_list}
        missing = [name for name in expected if name not in arrays]
        if missing:
            raise CheckpointError(f"checkpoint {path} has no value for variable(s) {missing}")
        unknown = sorted(name for name in arrays if name not in expected)
        if unknown:
            raise CheckpointError(f"checkpoint {path} holds entries that match no variable of this Saver: {unknown}")
        for name, variable in expected.items():
            _check_matches(path, variable, arrays[name])
        sess.load_variables({variable: arrays[name] for name, variable in expected.items()})


def _npz_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def _encode_metadata(arrays: dict[str, np.ndarray]) -> np.ndarray:
    entries = [{"name": name, "shape": list(a.shape), "dtype": a.dtype.name} for name, a in arrays.items()]
    text = json.dumps({"format": "graphc-checkpoint", "version": FORMAT_VERSION, "variables": entries})
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """The npz written to a temporary file in the target's directory, synced, then renamed over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _write_npz(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """What np.savez writes, minus pickling (and minus its keyword clash: a variable may be named "file")."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """Every array of the checkpoint (metadata checked against them), or a CheckpointError saying why not."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy file loads as one plain array
            raise CheckpointError(f"{path} is not a graphc checkpoint (not an .npz archive)")
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except _READ_ERRORS as error:
        reason = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{path} is damaged or not a graphc checkpoint ({reason})") from None
    metadata = arrays.pop(METADATA_KEY, None)
    if metadata is None:
        raise CheckpointError(f"{path} is not a graphc checkpoint: it has no {METADATA_KEY!r} entry")
    _check_metadata(path, _decode_metadata(path, metadata), arrays)
    return arrays


def _decode_metadata(path: str, metadata: np.ndarray) -> dict:
    try:
        if metadata.dtype != np.uint8 or metadata.ndim != 1:
            raise ValueError(f"a {metadata.dtype} array of shape {metadata.shape}, not uint8 bytes")
        decoded = json.loads(metadata.tobytes().decode("utf-8"))
        if not isinstance(decoded, dict) or not isinstance(decoded.get("variables"), list):
            raise ValueError("no list of variables")
        return decoded
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: the checkpoint metadata is damaged ({error})") from None


def _check_metadata(path: str, metadata: dict, arrays: dict[str, np.ndarray]) -> None:
    """The metadata's version is ours and it lists exactly the stored arrays, with their shapes and dtypes."""
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {metadata.get('version')!r}, this graphc reads "
                              f"version {FORMAT_VERSION}")
    try:
        listed = {e["name"]: (tuple(e["shape"]), e["dtype"]) for e in metadata["variables"]}
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: the checkpoint metadata is damaged ({error!r})") from None
    stored = {name: (a.shape, a.dtype.name) for name, a in arrays.items()}
    if listed != stored:
        raise CheckpointError(f"{path}: the checkpoint's arrays do not match its metadata (metadata "
                              f"{sorted(listed)}, arrays {sorted(stored)}); the file is damaged")


def _check_matches(path: str, variable: Variable, array: np.ndarray) -> None:
    if array.dtype.name != variable.dtype:
        raise CheckpointError(f"checkpoint {path}: variable '{variable.name}' is {variable.dtype} but the saved "
                              f"value is {array.dtype.name}")
    if array.shape != variable.shape:
        raise CheckpointError(f"checkpoint {path}: variable '{variable.name}' has shape "
                              f"{format_shape(variable.shape)} but the saved value has {format_shape(array.shape)}")
