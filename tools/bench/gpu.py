"""graphc's GPU benchmark: issue 9's workloads on one GPU, graphc's cuda backend next to PyTorch eager,
torch.compile and JAX jit, in one process.

    python tools/bench/gpu.py                    # on a machine with a GPU (tools/gpu-check runs it there)
    python tools/bench/gpu.py --json gpu.json    # also every number, for a note to quote
    python tools/bench/gpu.py --smoke            # tiny sizes, on whatever runs here: a check of this script

The workloads are run.py's, at the issue's GPU sizes:
  W1  the MLP SGD step 784-512-256-10, batch 128 (the loss fetched to the host: a training loop's step)
  W2  tanh(a·b + c)·sigmoid(a − c) + exp(−b·b) on 67,108,864 float32 elements
  W3  mean sparse softmax cross-entropy and its gradient on (4096, 1000) float32 logits
Every column's inputs are in GPU memory before timing (graphc: ``gc.to_device`` arrays, read in place;
W2's and W3's outputs stay there, ``on_device=True``), as JAX's are. A cell is the median of the calls'
times, each call from its start until its results are ready on the GPU (torch.cuda.synchronize, JAX's
block_until_ready; a graphc run returns after reading its status word, which waits for the GPU), after one
untimed call (compiling, tracing); every column's first results are checked against numpy's first. W2's
floor: its 16 bytes per element at the bandwidth of a device-to-device copy of 1 GiB (pycuda's memcpy_dtod),
measured in the same run. The issue's targets (on an H100) are printed with each verdict:
W2 within 1.3× of the floor, W3 no slower than JAX jit, W1 within 2× of JAX jit.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import run as cpu_bench  # noqa: E402 - the workloads are run.py's

import graphc as gc  # noqa: E402

SIZES = {"W1": cpu_bench.MLP_BATCH, "W2": 2**26, "W3": cpu_bench.W3_SHAPE}
SMOKE_SIZES = {"W1": 16, "W2": 2**12, "W3": (64, 100)}
REPEATS, SMOKE_REPEATS = 50, 3
COPY_BYTES, SMOKE_COPY_BYTES = 2**30, 2**20
TARGETS = {"W1": ("jax jit", 2.0), "W2": ("floor", 1.3), "W3": ("jax jit", 1.0)}  # (baseline, most time ÷ it)
Step = Callable[[], Sequence[Any]]


@dataclass
class Device:
    """Where the frameworks run: torch's device ("cuda", or "cpu" in a smoke run) and its synchronize."""

    torch: Any
    jax: Any
    name: str

    def synchronize(self) -> None:
        if self.torch is not None and self.name == "cuda":
            self.torch.cuda.synchronize()


def workloads(smoke: bool) -> dict[str, cpu_bench.Workload]:
    sizes = SMOKE_SIZES if smoke else SIZES
    rng = np.random.default_rng(0)
    return {"W1": cpu_bench.mlp(rng, batch=sizes["W1"]), "W2": cpu_bench.elementwise(rng, elements=sizes["W2"]),
            "W3": cpu_bench.softmax_cross_entropy(rng, shape=sizes["W3"])}


# -- graphc ------------------------------------------------------------------------------------------------
def graphc_step(workload: cpu_bench.Workload) -> Step:
    """A cuda Session running the workload with its feeds already on the GPU; a training step fetches its loss
    to the host, the others keep their outputs on the GPU."""
    session = gc.Session(graph=workload.graph, backend="cuda")
    feeds = {placeholder: gc.to_device(value) for placeholder, value in workload.feeds.items()}
    targets = [*workload.fetches, *workload.ops]
    on_device = not workload.ops
    return lambda: session.run(targets, feed_dict=feeds, on_device=on_device)[:len(workload.fetches)]


# -- PyTorch: eager and torch.compile --------------------------------------------------------------------
def torch_steps(name: str, workload: cpu_bench.Workload, device: Device, compiled: bool) -> Step:
    """The workload in PyTorch on ``device``, its function through torch.compile when ``compiled``."""
    t = device.torch
    feeds = [t.from_numpy(np.asarray(value)).to(device.name) for value in workload.feeds.values()]
    wrap = t.compile if compiled else (lambda f: f)
    if name == "W1":
        x, labels = feeds
        weights = [t.tensor(value, device=device.name, requires_grad=True) for value in mlp_initial(workload)]
        loss_of = wrap(lambda x, labels, *w: t.nn.functional.cross_entropy(cpu_bench.mlp_logits(x, w, t.relu),
                                                                           labels))

        def step() -> list[Any]:
            loss = loss_of(x, labels, *weights)
            grads = t.autograd.grad(loss, weights)
            with t.no_grad():
                for weight, grad in zip(weights, grads, strict=True):
                    weight.sub_(grad, alpha=cpu_bench.LEARNING_RATE)
            return [loss]
        return step
    if name == "W2":
        a, b, c = feeds
        function = wrap(lambda a, b, c: t.tanh(a * b + c) * t.sigmoid(a - c) + t.exp(-b * b))
        return lambda: [function(a, b, c)]
    logits, labels = feeds
    loss_of = wrap(lambda z, labels: t.nn.functional.cross_entropy(z, labels))

    def step() -> list[Any]:
        z = logits.detach().requires_grad_()
        loss = loss_of(z, labels)
        return [loss, *t.autograd.grad(loss, [z])]
    return step


def mlp_initial(workload: cpu_bench.Workload) -> list[np.ndarray]:
    """W1's initial weights: its graph's trainable variables' values before any step, in creation order."""
    with gc.Session(workload.graph, backend="numpy") as session:
        return session.run(gc.trainable_variables(workload.graph))


# -- measuring ---------------------------------------------------------------------------------------------
def timed(step: Step, device: Device, repeats: int) -> float:
    """The median seconds of ``repeats`` calls, each until its results are ready, after one untimed call."""
    step()
    device.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        device.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def host_values(values: Sequence[Any]) -> list[Any]:
    return [value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value) for value in values]


def columns(device: Device, no_compile: bool) -> dict[str, Callable[[str, cpu_bench.Workload], Step]]:
    """The columns that can run here (a line on stdout for a missing one, saying why)."""
    found: dict[str, Callable[[str, cpu_bench.Workload], Step]] = {}
    problem = cpu_bench.backend_problem("cuda")
    if problem is None:
        found["graphc cuda"] = lambda name, w: graphc_step(w)
    else:
        print(f"no graphc cuda column: {problem.splitlines()[0]}")
    for name, module in (("torch", device.torch), ("jax", device.jax)):
        if module is None:
            print(f"no {name} columns: not importable, or not on a GPU")
    if device.torch is not None:
        found["torch eager"] = lambda name, w: torch_steps(name, w, device, compiled=False)
        if not no_compile:
            found["torch.compile"] = lambda name, w: torch_steps(name, w, device, compiled=True)
    if device.jax is not None:
        found["jax jit"] = lambda name, w: w.jax(device.jax)
    return found


def copy_floor(elements: int, copy_bytes: int, repeats: int) -> dict[str, float]:
    """W2's 16 bytes per element at the device-to-device copy bandwidth (pycuda memcpy_dtod of ``copy_bytes``)."""
    from graphc.backends.cuda.executable import gpu

    device = gpu()
    source, destination = device.allocate(copy_bytes), device.allocate(copy_bytes)

    def copy() -> None:
        device.driver.memcpy_dtod(destination, source, copy_bytes)
        device.driver.Context.synchronize()
    seconds = timed(lambda: [copy()], Device(None, None, "none"), repeats)
    bandwidth = 2 * copy_bytes / seconds
    moved = cpu_bench.W2_BYTES_PER_ELEMENT * elements
    return {"copy_gb_per_s": bandwidth / 1e9, "floor_ms": moved / bandwidth * 1e3}


def frameworks(smoke: bool) -> Device:
    """torch and jax where importable; on the GPU unless this is a smoke run without one."""
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    name = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if name == "cpu" and not smoke:
        torch = None  # a GPU benchmark of torch on the CPU would mean nothing
    if smoke and name == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # JAX takes 75% of the GPU's memory at start-up unless told not to: torch and graphc share the GPU here
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = importlib.import_module("jax") if importlib.util.find_spec("jax") else None
    if jax is not None and not smoke and jax.default_backend() != "gpu":
        jax = None
    return Device(torch, jax, name)


def verdicts(medians: dict[str, dict[str, float]], floor: dict[str, float] | None) -> list[str]:
    """The issue's targets, each with the measured ratio and whether it is met."""
    lines = []
    for name, (baseline, most) in TARGETS.items():
        mine = medians.get(name, {}).get("graphc cuda")
        base = (floor or {}).get("floor_ms", 0) / 1e3 if baseline == "floor" else medians.get(name, {}).get(baseline)
        if mine is None or not base:
            lines.append(f"{name}: target ≤ {most}× {baseline} — not measured")
            continue
        ratio = mine / base
        lines.append(f"{name}: graphc cuda {mine * 1e3:.3f} ms = {ratio:.2f}× {baseline} (target ≤ {most}×): "
                     f"{'met' if ratio <= most else 'NOT met'}")
    return lines


def use_host_gpu() -> None:
    """Run the cuda backend on tests/backends/cuda/host_gpu.py's host GPU (g++-built kernels in host memory)."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from graphc.backends.cuda import executable
    from tests.backends.cuda.host_gpu import host_gpu

    device = host_gpu(Path(tempfile.mkdtemp(prefix="graphc-host-gpu-")))
    executable.gpu = lambda: device


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 3 calls, on whatever runs here")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="run only this workload")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--host-gpu", action="store_true",
                        help="with --smoke and no GPU: graphc's cuda column on the test suite's host GPU")
    args = parser.parse_args(argv)
    if args.host_gpu:
        use_host_gpu()
    device = frameworks(args.smoke)
    makers = columns(device, args.no_compile)
    repeats = SMOKE_REPEATS if args.smoke else REPEATS
    print(f"gpu bench: torch on {device.name if device.torch else '-'}, jax "
          f"{device.jax.default_backend() if device.jax else '-'}; columns: {', '.join(makers) or 'none'}; "
          f"median of {repeats} synchronized calls")
    medians: dict[str, dict[str, float]] = {}
    failures: dict[str, dict[str, str]] = {}
    for name, workload in workloads(args.smoke).items():
        if args.only and name not in args.only:
            continue
        expected = [np.asarray(v, np.float64) for v in workload.numpy()]
        medians[name], failures[name] = {}, {}
        for title, make in makers.items():
            try:
                step = make(name, workload)
                cpu_bench.check_close(name, title, host_values(step()), expected, rtol=workload.rtol,
                                      atol=workload.atol)
                medians[name][title] = timed(step, device, repeats)
            except Exception as error:  # one column failing must not hide the others
                failures[name][title] = f"{type(error).__name__}: {str(error)[:300]}"
        cells = [f"{title} {seconds * 1e3:.3f} ms" for title, seconds in medians[name].items()]
        print(f"{name} {workload.what}: " + ", ".join(cells))
        for title, why in failures[name].items():
            print(f"  {title} failed: {why}")
    floor = None
    if "graphc cuda" in makers and "W2" in medians:
        sizes = SMOKE_SIZES if args.smoke else SIZES
        floor = copy_floor(sizes["W2"], SMOKE_COPY_BYTES if args.smoke else COPY_BYTES, repeats)
        print(f"W2 floor: {cpu_bench.W2_BYTES_PER_ELEMENT} B/element at {floor['copy_gb_per_s']:.0f} GB/s "
              f"(device-to-device copy) = {floor['floor_ms']:.3f} ms")
    for line in verdicts(medians, floor):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"device": device.name, "repeats": repeats, "floor": floor,
                                         "median_ms": {w: {t: s * 1e3 for t, s in m.items()}
                                                       for w, m in medians.items()},
                                         "failures": failures}, indent=2))
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
