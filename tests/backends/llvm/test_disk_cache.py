"""The llvm backend's disk cache of machine code, end to end: a fresh Session and a fresh process load what an
earlier one compiled, corrupt entries are rebuilt, concurrent compilers leave a valid entry, and
GRAPHC_CACHE_DIR=off writes nothing."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.runtime.cache import DiskCache

ROOT = Path(__file__).resolve().parents[3]
FETCHES = "loss, train"  # how GRAPHC_LOG=compile names the fetches of ``model``

# a new process: builds the model of this file, waits for ``go`` (a file) if given, runs it and prints the results
SCRIPT = """
import json, sys, time
from pathlib import Path
import graphc as gc
from tests.backends.llvm.test_disk_cache import model, results
go = Path(sys.argv[1]) if len(sys.argv) > 1 else None
graph, fetches, feeds = model()
if go is not None:
    Path(str(go) + f".ready{sys.argv[2]}").touch()
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
started = time.perf_counter()
values = results(graph, fetches, feeds)
print(json.dumps({"values": values, "first_run_s": time.perf_counter() - started}))
"""


def model():
    """A small float64 regression step (forward, gradients, updates), the same in every process."""
    rng = np.random.default_rng(7)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float64", (None, 5), name="x")
        target = gc.placeholder("float64", (None,), name="target")
        w = gc.Variable(rng.normal(size=(5, 4)), name="w")
        v = gc.Variable(rng.normal(size=4), name="v")
        prediction = gc.reduce_sum(gc.tanh(x @ w) * v, axis=1)
        loss = gc.reduce_mean(gc.square(prediction - target), name="loss")
        dw, dv = gc.gradients(loss, [w, v])
        train = gc.group(gc.assign(w, w - 0.1 * dw), gc.assign(v, v - 0.1 * dv), name="train")
    feeds = [{x: rng.normal(size=(rows, 5)), target: rng.normal(size=rows)} for rows in (8, 3, 8)]
    return graph, ([loss, train], [w, v]), feeds


def results(graph, fetches, feeds, backend="llvm"):
    """The losses of a few training steps and the final weights, as lists (JSON for a subprocess)."""
    step, weights = fetches
    with gc.Session(graph, backend=backend) as sess:
        losses = [float(sess.run(step, feed)[0]) for feed in feeds]
        return {"losses": losses, "weights": [w.tolist() for w in sess.run(weights)]}


def assert_same(got, expected):
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=1e-12)
    for value, want in zip(got["weights"], expected["weights"]):
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-15)


@pytest.fixture(scope="module")
def expected():
    """The numpy reference's results."""
    return results(*model(), backend="numpy")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(directory))
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    for name in ("GRAPHC_CHECK_NUMERICS", "GRAPHC_VERIFY", "GRAPHC_OPT_EXCLUDE"):
        monkeypatch.delenv(name, raising=False)
    return directory


def outcome(log):
    """The disk-cache outcome of the one compilation of the model's training step in a GRAPHC_LOG output."""
    lines = [line for line in log.splitlines() if line.startswith(f"graphc: compiled [{FETCHES}]")]
    assert len(lines) == 1, log
    return lines[0].rsplit("disk cache: ", 1)[1]


def entries(directory):
    return sorted(directory.glob("??/*.gcc"))


def run_in_process(capsys):
    values = results(*model())
    return values, outcome(capsys.readouterr().err)


def start_process(directory, *args):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(directory), GRAPHC_LOG="compile",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    payload = json.loads(out.strip().splitlines()[-1])
    return payload, outcome(err)


# -- 1. miss, then hit in a fresh Session -------------------------------------------------------------------------
def test_fresh_session_loads_from_the_disk_cache(cache_dir, capsys, expected):
    first, said = run_in_process(capsys)
    assert said == "miss, stored"
    assert len(entries(cache_dir)) >= 1
    assert_same(first, expected)
    stored = {path: path.stat().st_size for path in entries(cache_dir)}
    second, said = run_in_process(capsys)
    assert said == "hit"
    assert_same(second, expected)
    assert {path: path.stat().st_size for path in entries(cache_dir)} == stored  # a hit writes no new entry
    graph, (step, _), feeds = model()
    with gc.Session(graph, backend="llvm") as sess:
        report = sess.compiled(step, feeds[0]).report
    assert report.cache == "hit" and "machine code" not in report.stages and "load" in report.stages


# -- 2. a new process ---------------------------------------------------------------------------------------------
def test_new_process_hits_the_cache(cache_dir, capsys, expected):
    first, said = run_in_process(capsys)
    assert said == "miss, stored"
    assert_same(first, expected)
    payload, said = finish(start_process(cache_dir))
    assert said == "hit"
    assert_same(payload["values"], expected)
    print(f"first run of a new process, from the disk cache: {payload['first_run_s'] * 1e3:.1f} ms")


# -- 3. corrupt entries -------------------------------------------------------------------------------------------
def truncate(data):
    return data[: len(data) // 2]


def flip_a_byte(data):
    return data[:-100] + bytes([data[-100] ^ 0x40]) + data[-99:]


def garbage(data):
    return b"not a cache entry" * 3


def empty(data):
    return b""


@pytest.mark.parametrize(("damage", "reason"), [(truncate, "truncated"), (flip_a_byte, "checksum mismatch"),
                                                (garbage, "bad magic"), (empty, "truncated")])
def test_corrupt_entry_is_reported_and_rebuilt(cache_dir, capsys, expected, damage, reason):
    run_in_process(capsys)
    paths = entries(cache_dir)
    assert paths
    for path in paths:
        path.write_bytes(damage(path.read_bytes()))
    values, said = run_in_process(capsys)
    assert said.startswith(f"cache entry corrupt: {reason}") and said.endswith("; miss, stored"), said
    assert_same(values, expected)
    values, said = run_in_process(capsys)  # the rebuilt entry is good
    assert said == "hit"
    assert_same(values, expected)


# -- 4. concurrent processes ----------------------------------------------------------------------------------------
def test_concurrent_processes_compile_into_one_valid_entry(cache_dir, tmp_path, expected):
    go = tmp_path / "go"
    processes = [start_process(cache_dir, go, i) for i in range(3)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready*"))) < 3 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), [p.communicate()[1] for p in processes]
        time.sleep(0.01)
    go.touch()  # all three start compiling now, into an empty directory
    outcomes = []
    for process in processes:
        payload, said = finish(process)
        assert_same(payload["values"], expected)
        outcomes.append(said)
    assert set(outcomes) <= {"miss, stored", "hit"} and "miss, stored" in outcomes, outcomes
    files = sorted(p for p in cache_dir.rglob("*") if p.is_file())
    assert files and all(p.suffix == ".gcc" for p in files), files  # no temp file left behind
    cache = DiskCache(cache_dir)
    for path in files:
        assert cache.get(path.stem) is not None, path  # every entry reads back whole
    payload, said = finish(start_process(cache_dir))
    assert said == "hit"
    assert_same(payload["values"], expected)


# -- 5. GRAPHC_CACHE_DIR=off ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["off", "OFF", "0", "none"])
def test_cache_off_writes_nothing(tmp_path, monkeypatch, capsys, expected, setting):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GRAPHC_CACHE_DIR", setting)
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    monkeypatch.setenv("HOME", str(home))  # where the cache would go by default
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        values, said = run_in_process(capsys)
        assert said == "off"
        assert_same(values, expected)
    assert [p for p in tmp_path.rglob("*") if p != home] == []


def test_unwritable_cache_directory_still_runs(tmp_path, monkeypatch, capsys, expected):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    values, said = run_in_process(capsys)
    assert said.startswith("cache unwritable: cannot create directory") and said.endswith("; miss"), said
    assert_same(values, expected)
    assert blocker.read_text() == "not a directory"
