"""The on-disk compile cache: a key -> (JSON meta, opaque bytes) store, so a new process loads compiled code
instead of compiling it again.

Safety comes first, speed second:

- Loading never executes anything: the meta is parsed with ``json`` only and the payload is returned as
  bytes. No pickle, no eval.
- Every entry is checked before it is used (magic, format version, the key it was stored under, its lengths
  and a sha256 over the whole file), so a truncated, bit-flipped, stale or misplaced file is a miss, never a
  wrong hit. The bad file is removed and the reason reported through ``on_event`` (default: the
  ``graphc.runtime.cache`` logger at DEBUG level), so a caller can say "cache entry corrupt: checksum
  mismatch, rebuilding".
- Writers never leave a partial file under an entry's name: each writes a temp file of its own in the same
  directory, fsyncs it and ``os.replace``s it onto the name, which is atomic on POSIX. Several processes
  compiling the same graph at once each install a complete entry; readers see one of them or none.
- The disk is optional: a cache directory that cannot be created or written makes ``put`` return False,
  never raise, so a read-only home does not break graphc. ``GRAPHC_CACHE_DIR=off`` switches it off.

File layout: ``<directory>/<key[:2]>/<key>.gcc``. Each file is a fixed header (magic ``GRAPHCC\\0``, format
version as uint32, the 64-character hex key, meta and payload lengths as uint64, all little-endian, then the
sha256 of every other byte of the file), the meta as UTF-8 JSON, then the payload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphc import environment
from graphc.errors import ArgumentError

FORMAT_VERSION = 1
_MAGIC = b"GRAPHCC\0"
_HEAD = struct.Struct("<8sI64sQQ")  # magic, version, key, meta length, payload length
_DIGEST = 32
_HEADER_SIZE = _HEAD.size + _DIGEST
_SUFFIX = ".gcc"
_TEMP_SUFFIX = ".tmp"
_STALE_TEMP_SECONDS = 3600.0  # a temp file this old belongs to a writer that died
_KEY = re.compile(r"[0-9a-f]{64}")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """A cache hit: the JSON meta the caller stored and its payload, as bytes."""

    meta: dict[str, Any]
    payload: bytes


@dataclass(frozen=True)
class CacheEvent:
    """Something the cache could not do, for the caller to report.

    ``kind`` is ``"corrupt"`` (``get`` found an entry it cannot use, removed it and missed) or
    ``"unwritable"`` (``put`` could not store an entry). ``reason`` is one of a fixed set of short strings
    (see ``CORRUPT_REASONS`` and ``UNWRITABLE_REASONS``); ``detail`` adds what varies, such as the OS error.
    ``str(event)`` is a ready message: "cache entry corrupt: checksum mismatch".
    """

    kind: str
    key: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        subject = "cache entry corrupt" if self.kind == "corrupt" else "cache unwritable"
        return f"{subject}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


CORRUPT_REASONS = ("unreadable", "truncated", "bad magic", "unsupported format version", "key mismatch",
                   "trailing data", "checksum mismatch", "invalid meta JSON")
UNWRITABLE_REASONS = ("cannot create directory", "cannot write entry")


class _Corrupt(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _log_event(event: CacheEvent) -> None:
    _log.debug("%s [key %s]", event, event.key)


class DiskCache:
    """A directory of cache entries, one file per key.

    ``directory``: where the entries live; None takes GRAPHC_CACHE_DIR, then $XDG_CACHE_HOME/graphc, then
    ~/.cache/graphc (see graphc.environment), and leaves the cache off when GRAPHC_CACHE_DIR is ``off``,
    ``0`` or ``none``: then ``get`` always misses and ``put`` stores nothing. ``on_event`` receives a
    ``CacheEvent`` for each corrupt entry found and each failed write.
    """

    def __init__(self, directory: Path | str | None = None,
                 on_event: Callable[[CacheEvent], None] | None = None) -> None:
        self.directory: Path | None = Path(directory) if directory is not None else environment.current().cache_dir
        self._on_event = on_event if on_event is not None else _log_event

    @property
    def enabled(self) -> bool:
        """False when the disk cache is off: GRAPHC_CACHE_DIR says so, or there is no home to default to."""
        return self.directory is not None

    @staticmethod
    def key(*parts: str) -> str:
        """The sha256 hex digest naming an entry: pass everything the compiled code depends on (graphc
        version, target and CPU features, LLVM version, the canonical text of the graph and signature).
        Each part is length-prefixed, so ("ab", "c") and ("a", "bc") give different keys."""
        digest = hashlib.sha256()
        for part in parts:
            if not isinstance(part, str):
                raise ArgumentError(f"cache key parts must be str, got {type(part).__name__}: {part!r}")
            data = part.encode("utf-8")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or None: absent, cache off, or unusable (then the file is removed
        and a ``"corrupt"`` event says why). A hit refreshes the file's mtime, which ``prune`` goes by."""
        _check_key(key)
        if self.directory is None:
            return None
        path = _entry_path(self.directory, key)
        try:
            with open(path, "rb") as file:
                identity = os.fstat(file.fileno())
                data = file.read()
        except (FileNotFoundError, NotADirectoryError):  # no entry, or no cache directory
            return None
        except OSError as error:
            self._report("corrupt", key, "unreadable", str(error))
            _discard(path, None)
            return None
        try:
            entry = _decode(key, data)
        except _Corrupt as corrupt:
            self._report("corrupt", key, corrupt.reason, corrupt.detail)
            _discard(path, identity)
            return None
        try:
            os.utime(path)
        except OSError:
            pass  # a read-only cache still serves hits
        return entry

    def put(self, key: str, meta: dict[str, Any], payload: bytes) -> bool:
        """Store ``meta`` (a JSON-able dict) and ``payload`` under ``key``, replacing any entry there.
        True when stored; False when the cache is off or the directory cannot be written (an
        ``"unwritable"`` event says why). A meta that JSON cannot encode raises ArgumentError."""
        _check_key(key)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ArgumentError(f"a cache payload is bytes, got {type(payload).__name__}")
        data = _encode(key, meta, bytes(payload))
        if self.directory is None:
            return False
        path = _entry_path(self.directory, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self._report("unwritable", key, "cannot create directory", str(error))
            return False
        temp = path.with_name(f".{key}.{os.getpid()}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            with open(temp, "xb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except OSError as error:
            self._report("unwritable", key, "cannot write entry", str(error))
            _discard(temp, None)
            return False
        return True

    def prune(self, max_bytes: int) -> int:
        """Delete the least recently used entries (oldest mtime first) until the entries take at most
        ``max_bytes``, and temp files left by writers that died; returns how many entries it deleted."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        entries = []
        now = time.time()
        for path in self.directory.glob("??/*"):
            try:
                status = path.stat()
            except OSError:
                continue  # removed by another process meanwhile
            if path.name.endswith(_TEMP_SUFFIX):
                if now - status.st_mtime > _STALE_TEMP_SECONDS:
                    _discard(path, None)
            elif path.name.endswith(_SUFFIX):
                entries.append((status.st_mtime, status.st_size, path))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        deleted = 0
        for _, size, path in entries:
            if total <= max_bytes:
                break
            _discard(path, None)
            total -= size
            deleted += 1
        return deleted

    def _report(self, kind: str, key: str, reason: str, detail: str = "") -> None:
        self._on_event(CacheEvent(kind, key, reason, detail))


def _entry_path(directory: Path, key: str) -> Path:
    return directory / key[:2] / f"{key}{_SUFFIX}"


def _check_key(key: str) -> None:
    """Keys name files, so only what ``DiskCache.key`` makes is accepted: no path can be smuggled in."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ArgumentError(f"a cache key is 64 lowercase hex digits (from DiskCache.key), got {key!r}")


def _encode(key: str, meta: dict[str, Any], payload: bytes) -> bytes:
    if not isinstance(meta, dict):
        raise ArgumentError(f"cache meta must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(meta, sort_keys=True, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"cache meta must be JSON-encodable: {error}") from error
    head = _HEAD.pack(_MAGIC, FORMAT_VERSION, key.encode("ascii"), len(text), len(payload))
    return head + hashlib.sha256(head + text + payload).digest() + text + payload


def _decode(key: str, data: bytes) -> Entry:
    """Check ``data`` (a whole file) and return its entry, or raise _Corrupt naming what is wrong."""
    if len(data) < len(_MAGIC) and _MAGIC.startswith(data):
        raise _Corrupt("truncated")
    if not data.startswith(_MAGIC):
        raise _Corrupt("bad magic")
    if len(data) < _HEADER_SIZE:
        raise _Corrupt("truncated")
    _, version, stored_key, meta_size, payload_size = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise _Corrupt("unsupported format version", f"file has {version}, this graphc reads {FORMAT_VERSION}")
    if stored_key != key.encode("ascii"):
        raise _Corrupt("key mismatch")
    size = _HEADER_SIZE + meta_size + payload_size
    if len(data) != size:
        raise _Corrupt("truncated" if len(data) < size else "trailing data", f"{len(data)} bytes, expected {size}")
    body = data[_HEADER_SIZE:]
    if hashlib.sha256(data[:_HEAD.size] + body).digest() != data[_HEAD.size:_HEADER_SIZE]:
        raise _Corrupt("checksum mismatch")
    try:
        meta = json.loads(body[:meta_size].decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise _Corrupt("invalid meta JSON", str(error)) from None
    if not isinstance(meta, dict):
        raise _Corrupt("invalid meta JSON", f"a {type(meta).__name__}, not an object")
    return Entry(meta, body[meta_size:])


def _discard(path: Path, identity: os.stat_result | None) -> None:
    """Remove ``path`` if it can be removed; with ``identity``, only while it is still that file, so a bad
    entry's removal cannot take a good one that another process has just put in its place."""
    try:
        if identity is not None:
            now = os.stat(path)
            if (now.st_dev, now.st_ino) != (identity.st_dev, identity.st_ino):
                return
        os.unlink(path)
    except OSError:
        pass
