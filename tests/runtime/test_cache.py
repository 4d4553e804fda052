"""The on-disk compile cache: hits, misses, every kind of bad file, the environment, unwritable directories,
concurrent writers, and loading that never executes anything."""

import hashlib
import logging
import multiprocessing
import os
import pickle
import struct
from pathlib import Path

import pytest

from graphc.errors import ArgumentError
from graphc.runtime.cache import CORRUPT_REASONS, DiskCache, Entry

KEY = DiskCache.key("graphc 0.1.0", "x86_64 avx2 llvm 17", "graph text")
OTHER = DiskCache.key("another graph")
META = {"buffers": [[0, 16], [16, 32]], "names": ["x", "loss"], "entry": "run_0"}
PAYLOAD = bytes(range(256)) * 8

# The documented file layout, written out independently here so the tests pin it down.
HEAD = struct.Struct("<8sI64sQQ")
MAGIC = b"GRAPHCC\0"
VERSION_AT, KEY_AT, LENGTHS_AT, CHECKSUM_AT, HEADER = 8, 12, 76, 92, 124


class Recorder(list):
    """An on_event callback that keeps the events."""

    def __call__(self, event):
        self.append(event)

    @property
    def reasons(self):
        return [event.reason for event in self]


def entry_path(directory, key):
    return Path(directory) / key[:2] / f"{key}.gcc"


def build(key, meta_bytes, payload, version=1, magic=MAGIC):
    """A file in the documented layout with a valid checksum, whatever its contents."""
    head = HEAD.pack(magic, version, key.encode("ascii"), len(meta_bytes), len(payload))
    return head + hashlib.sha256(head + meta_bytes + payload).digest() + meta_bytes + payload


def stored(tmp_path):
    events = Recorder()
    cache = DiskCache(tmp_path, on_event=events)
    assert cache.put(KEY, META, PAYLOAD)
    return cache, events, entry_path(tmp_path, KEY)


def test_hit_after_put_also_in_a_new_cache_object(tmp_path):
    cache, events, path = stored(tmp_path)
    assert cache.get(KEY) == Entry(META, PAYLOAD)
    assert DiskCache(tmp_path).get(KEY) == Entry(META, PAYLOAD)
    assert path.is_file() and events == []
    assert list(tmp_path.rglob("*.tmp")) == []


def test_miss_on_unknown_key(tmp_path):
    cache, events, _ = stored(tmp_path)
    assert cache.get(OTHER) is None
    assert DiskCache(tmp_path / "empty").get(KEY) is None
    assert events == []


def test_put_replaces(tmp_path):
    cache, _, _ = stored(tmp_path)
    assert cache.put(KEY, {"v": 2}, b"new")
    assert cache.get(KEY) == Entry({"v": 2}, b"new")


def test_key_is_a_sha256_over_length_prefixed_parts():
    assert len(KEY) == 64 and int(KEY, 16) >= 0
    assert DiskCache.key("a", "b") == DiskCache.key("a", "b")
    assert DiskCache.key("ab", "c") != DiskCache.key("a", "bc")
    assert DiskCache.key("a") != DiskCache.key("a", "")
    with pytest.raises(ArgumentError, match="must be str"):
        DiskCache.key("a", 3)


@pytest.mark.parametrize("key", ["../../etc/passwd", KEY.upper(), KEY[:-1], KEY + "0", 7])
def test_only_real_keys_are_accepted(tmp_path, key):
    cache = DiskCache(tmp_path)
    with pytest.raises(ArgumentError, match="64 lowercase hex"):
        cache.get(key)
    with pytest.raises(ArgumentError, match="64 lowercase hex"):
        cache.put(key, {}, b"")


@pytest.mark.parametrize("meta", [{"x": object()}, {"x": float("nan")}, ["not", "a", "dict"]])
def test_meta_must_be_a_json_object(tmp_path, meta):
    with pytest.raises(ArgumentError, match="cache meta"):
        DiskCache(tmp_path).put(KEY, meta, b"")


def test_payload_must_be_bytes(tmp_path):
    with pytest.raises(ArgumentError, match="payload is bytes"):
        DiskCache(tmp_path).put(KEY, {}, 5)
    assert DiskCache(tmp_path).put(KEY, {}, bytearray(b"ok"))
    assert DiskCache(tmp_path).get(KEY) == Entry({}, b"ok")


def truncate_at(offset):
    return lambda data: data[:offset] if offset >= 0 else data[:len(data) + offset]


def flip(offset):
    def damage(data):
        offset_ = offset if offset >= 0 else len(data) + offset
        return data[:offset_] + bytes([data[offset_] ^ 0x01]) + data[offset_ + 1:]
    return damage


META_AT = HEADER + 5
PAYLOAD_AT = -100

CORRUPTIONS = {
    "empty": (truncate_at(0), "truncated"),
    "inside magic": (truncate_at(4), "truncated"),
    "after magic": (truncate_at(8), "truncated"),
    "inside key": (truncate_at(40), "truncated"),
    "inside checksum": (truncate_at(HEADER - 1), "truncated"),
    "after header": (truncate_at(HEADER), "truncated"),
    "inside meta": (truncate_at(META_AT), "truncated"),
    "inside payload": (truncate_at(PAYLOAD_AT), "truncated"),
    "last byte": (truncate_at(-1), "truncated"),
    "flip payload": (flip(PAYLOAD_AT), "checksum mismatch"),
    "flip meta": (flip(META_AT), "checksum mismatch"),
    "flip checksum": (flip(CHECKSUM_AT + 7), "checksum mismatch"),
    "flip magic": (flip(2), "bad magic"),
    "flip version": (flip(VERSION_AT), "unsupported format version"),
    "flip key": (flip(KEY_AT + 10), "key mismatch"),
    "flip meta length low bit": (flip(LENGTHS_AT), "trailing data"),  # the meta's 65 bytes say 64
    "flip high length byte": (flip(LENGTHS_AT + 7), "truncated"),
    "appended": (lambda data: data + b"\0", "trailing data"),
    "wrong magic": (lambda data: b"PK\3\4" + data[4:], "bad magic"),
    "short garbage": (lambda data: b"{}", "bad magic"),
    "other version": (lambda data: data[:VERSION_AT] + struct.pack("<I", 2) + data[KEY_AT:],
                      "unsupported format version"),
    "checksummed non-JSON meta": (lambda data: build(KEY, b"{not json", b"x"), "invalid meta JSON"),
    "checksummed non-UTF-8 meta": (lambda data: build(KEY, b"\xff\xfe", b"x"), "invalid meta JSON"),
    "checksummed meta not an object": (lambda data: build(KEY, b"[1, 2]", b"x"), "invalid meta JSON"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupt_entry_is_a_reported_miss_then_rebuilt(tmp_path, name):
    damage, reason = CORRUPTIONS[name]
    cache, events, path = stored(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get(KEY) is None
    assert events.reasons == [reason] and reason in CORRUPT_REASONS
    assert events[0].kind == "corrupt" and events[0].key == KEY
    assert str(events[0]).startswith(f"cache entry corrupt: {reason}")
    assert not path.exists()
    assert cache.get(KEY) is None and len(events) == 1  # removed, so now a plain miss
    assert cache.put(KEY, META, PAYLOAD)
    assert cache.get(KEY) == Entry(META, PAYLOAD)


def test_an_entry_filed_under_another_key_is_a_key_mismatch(tmp_path):
    cache, events, path = stored(tmp_path)
    other = entry_path(tmp_path, OTHER)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(path.read_bytes())
    assert cache.get(OTHER) is None
    assert events.reasons == ["key mismatch"]
    assert cache.get(KEY) == Entry(META, PAYLOAD)


def test_other_format_version_says_which(tmp_path):
    cache, events, path = stored(tmp_path)
    path.write_bytes(build(KEY, b"{}", b"", version=7))
    assert cache.get(KEY) is None
    assert str(events[0]) == "cache entry corrupt: unsupported format version (file has 7, this graphc reads 1)"


def test_an_unreadable_entry_is_a_miss_and_cannot_be_written_over(tmp_path):
    events = Recorder()
    cache = DiskCache(tmp_path, on_event=events)
    entry_path(tmp_path, KEY).mkdir(parents=True)  # a directory where the file should be
    assert cache.get(KEY) is None
    assert cache.put(KEY, META, PAYLOAD) is False
    assert events.reasons == ["unreadable", "cannot write entry"]
    assert [e.kind for e in events] == ["corrupt", "unwritable"]
    assert list(tmp_path.rglob("*.tmp")) == []  # the writer cleaned up its temp file


def test_a_directory_that_cannot_be_created_degrades_put(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    events = Recorder()
    cache = DiskCache(tmp_path / "file" / "cache", on_event=events)
    assert cache.put(KEY, META, PAYLOAD) is False
    assert cache.get(KEY) is None
    assert events.reasons == ["cannot create directory"]
    assert str(events[0]).startswith("cache unwritable: cannot create directory (")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions that bind")
def test_a_read_only_directory_degrades_put_and_still_serves_hits(tmp_path):
    cache, events, _ = stored(tmp_path)
    modes = [(d, d.stat().st_mode) for d in (tmp_path, *tmp_path.iterdir())]
    for directory, _ in modes:
        directory.chmod(0o555)
    try:
        assert cache.put(OTHER, META, PAYLOAD) is False
        assert cache.put(KEY, {}, b"") is False
        assert cache.get(KEY) == Entry(META, PAYLOAD)
    finally:
        for directory, mode in modes:
            directory.chmod(mode)
    assert events.reasons == ["cannot create directory", "cannot write entry"]


def test_the_environment_picks_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "chosen"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DiskCache().directory == tmp_path / "chosen"
    assert DiskCache(tmp_path / "argument").directory == tmp_path / "argument"
    assert DiskCache().put(KEY, META, PAYLOAD)
    assert entry_path(tmp_path / "chosen", KEY).is_file()
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    assert DiskCache().directory == tmp_path / "xdg" / "graphc"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert DiskCache().directory == tmp_path / "home" / ".cache" / "graphc"


@pytest.mark.parametrize("value", ["off", "OFF", "0", "none", " off "])
def test_the_environment_can_switch_the_cache_off(tmp_path, monkeypatch, value):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", value)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = DiskCache()
    assert not cache.enabled and cache.directory is None
    assert cache.put(KEY, META, PAYLOAD) is False
    assert cache.get(KEY) is None
    assert cache.prune(0) == 0
    assert list(tmp_path.iterdir()) == []
    assert DiskCache(tmp_path).enabled  # an explicit directory still works


class Bomb:
    """Unpickling this creates a directory: proof that something was executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    exploded = tmp_path / "exploded"
    bomb = pickle.dumps(Bomb(str(exploded)))

    def forbidden(*args, **kwargs):
        raise AssertionError("the cache unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    events = Recorder()
    cache = DiskCache(tmp_path / "cache", on_event=events)
    assert cache.put(KEY, {"kind": "pickle"}, bomb)
    assert cache.get(KEY) == Entry({"kind": "pickle"}, bomb)  # opaque bytes, as stored
    entry_path(tmp_path / "cache", KEY).write_bytes(build(KEY, bomb, b""))  # a pickle where the JSON goes
    assert cache.get(KEY) is None
    assert events.reasons == ["invalid meta JSON"]
    assert not exploded.exists()


def test_prune_deletes_least_recently_used_first(tmp_path):
    cache = DiskCache(tmp_path)
    keys = [DiskCache.key(str(i)) for i in range(4)]
    for age, key in zip((400, 300, 200, 100), keys):
        assert cache.put(key, {}, b"x" * 1000)
        os.utime(entry_path(tmp_path, key), (0, 1_000_000 - age))
    size = entry_path(tmp_path, keys[0]).stat().st_size
    assert cache.get(keys[0]) is not None  # a hit makes it the most recently used
    stale = entry_path(tmp_path, keys[0]).with_name("." + keys[0] + ".1.ab.tmp")
    stale.write_bytes(b"left by a writer that died")
    os.utime(stale, (0, 0))
    assert cache.prune(2 * size) == 2
    assert [cache.get(key) is not None for key in keys] == [True, False, False, True]
    assert not stale.exists()
    assert cache.prune(10**9) == 0


def test_events_default_to_the_log(tmp_path, caplog):
    cache = DiskCache(tmp_path)
    assert cache.put(KEY, META, PAYLOAD)
    entry_path(tmp_path, KEY).write_bytes(b"")
    with caplog.at_level(logging.DEBUG, logger="graphc.runtime.cache"):
        assert cache.get(KEY) is None
    assert "cache entry corrupt: truncated" in caplog.text


WRITERS, PUTS = 4, 20


def writer_payload(writer, i):
    """Distinct, self-describing payloads of distinct lengths, large enough that a torn write would show."""
    return (f"writer {writer} put {i};".encode() * 4000)[:60_000 + 1000 * i + writer]


def write_and_read(directory, writer, start, results):
    """One process of the concurrency test: put the shared key PUTS times, reading it between puts."""
    events = Recorder()
    cache = DiskCache(directory, on_event=events)
    problems, hits = [], 0
    start.wait()
    for i in range(PUTS):
        payload = writer_payload(writer, i)
        if not cache.put(KEY, {"writer": writer, "i": i, "sha256": hashlib.sha256(payload).hexdigest()}, payload):
            problems.append(f"put {i} failed")
        for _ in range(3):
            entry = cache.get(KEY)
            if entry is None:
                continue
            hits += 1
            if entry.payload != writer_payload(entry.meta["writer"], entry.meta["i"]):
                problems.append(f"entry {entry.meta} holds another payload")
            if hashlib.sha256(entry.payload).hexdigest() != entry.meta["sha256"]:
                problems.append(f"entry {entry.meta} fails its own checksum")
    problems.extend(str(event) for event in events)
    results.put((writer, problems, hits))


def test_concurrent_writers_never_leave_a_corrupt_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(WRITERS), context.Queue()
    processes = [context.Process(target=write_and_read, args=(str(tmp_path), w, start, results))
                 for w in range(WRITERS)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert [problems for _, problems, _ in reports] == [[]] * WRITERS
    assert all(hits > 0 for _, _, hits in reports)
    final = DiskCache(tmp_path).get(KEY)
    assert final is not None and final.meta["i"] == PUTS - 1
    assert final.payload == writer_payload(final.meta["writer"], PUTS - 1)
    assert list(tmp_path.rglob("*.tmp")) == []
