"""tools/bench/gpu.py, the GPU benchmark, in its smoke form on the host GPU: its graphc column builds, checks
against numpy and times every workload (the GPU machine's run must not be the first time it runs)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.backends.cuda.emulate import GXX
from tests.backends.cuda.host_gpu import use_host_gpu

pytestmark = pytest.mark.skipif(GXX is None, reason="the host GPU needs g++")
SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "bench" / "gpu.py"


def test_the_gpu_benchmark_runs_and_checks_its_graphc_column(tmp_path, monkeypatch, capsys):
    use_host_gpu(monkeypatch, tmp_path)
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_bench", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "frameworks", lambda smoke: bench.Device(None, None, "cpu"))  # graphc alone
    assert bench.main(["--smoke", "--json", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert set(report["median_ms"]) == {"W1", "W2", "W3"}
    assert all(set(cells) == {"graphc cuda"} for cells in report["median_ms"].values())
    assert report["floor"]["floor_ms"] > 0 and "W2: graphc cuda" in out and "× floor" in out
    assert "W3: target ≤ 1.0× jax jit — not measured" in out
