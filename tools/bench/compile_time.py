"""W1's first run on the llvm backend in this fresh process, for run.py's compile times: prints one JSON line.

    GRAPHC_CACHE_DIR=$(mktemp -d) python tools/bench/compile_time.py

``import_s`` is how long ``import graphc`` took here (numpy's import included), told apart because every
process pays it whatever is cached; ``first_run_s`` runs from building the Session to the first ``run``
result: graph optimization, lowering and LLVM code generation (or the disk cache's load: run.py runs this
first on an empty GRAPHC_CACHE_DIR, cold, then again on the same directory, warm), and the step itself.
A fresh process makes sure nothing compiled earlier in the benchmark's own process is reused.
"""

import time

started = time.perf_counter()
import graphc as gc  # noqa: E402 - the import is what is timed

imported = time.perf_counter() - started

import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
from run import mlp  # noqa: E402 - run.py beside this file: python puts the script's directory on sys.path


def first_run_seconds() -> float:
    """Seconds from ``gc.Session(backend="llvm")`` to the first result of W1's training step."""
    workload = mlp(np.random.default_rng(0))
    start = time.perf_counter()
    session = gc.Session(graph=workload.graph, backend="llvm")
    session.run([*workload.fetches, *workload.ops], feed_dict=workload.feeds)
    return time.perf_counter() - start


if __name__ == "__main__":
    json.dump({"import_s": imported, "first_run_s": first_run_seconds()}, sys.stdout)
    print()
