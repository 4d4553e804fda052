"""Every script in examples/ runs to completion in a fresh interpreter and prints what it promises.

By default each training example runs in smoke mode (GRAPHC_EXAMPLE_SMOKE=1: a handful of steps) and must
print its metric line; the tests marked slow run them in full and check the targets the docs quote.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(path for path in EXAMPLES_DIR.glob("*.py") if not path.name.startswith("_"))  # _common: a module
NUMBER = r"(-?\d+\.\d+(?:e[-+]\d+)?)"

# text each example must print in smoke and full runs (examples not listed only have to exit cleanly)
EXPECTED_OUTPUT = {
    "demo.py": ["y(2, 5) = 11.652", "MSE", "test accuracy: ", "the optimized training graph"],
    "symbolic_vs_ad.py": ["∂y/∂x1 = x2 + 1/x1", "∂y/∂x2 = x1 - cos(x2)"],
    "ad_traces.py": ["= 11.652", "ẏ   = v̇₅                        = 5.5", "= -0.284 + 1 × 2 = 1.716"],
    "xor.py": [" x1 x2 | f\n  0  0 | 0\n  0  1 | 1\n  1  0 | 1\n  1  1 | 0\n", "XOR solved: "],
    "linear_regression.py": ["a = ", "|a - a_true| = "],
    "cubic_sin.py": ["199 ", "Result: y = "],
}
# the line holding each training example's final metric: a regular expression whose groups are the numbers
METRIC = {
    "demo.py": rf"test accuracy: {NUMBER}",
    "linear_regression.py": rf"\|a - a_true\| = {NUMBER}, \|b - b_true\| = {NUMBER}",
    "cubic_sin.py": rf"Result: y = {NUMBER} \+ {NUMBER} x \+ {NUMBER} x\^2 \+ {NUMBER} x\^3",
    "digits_mlp.py": rf"test accuracy: {NUMBER}",
    "digits_cnn.py": rf"test accuracy: {NUMBER}",
    "residual_mlp.py": rf"test accuracy: {NUMBER}",
    "autoencoder.py": rf"test reconstruction MSE: {NUMBER} \(autoencoder.*\n.*MSE: {NUMBER} \(PCA",
    "transformer.py": rf"token accuracy: {NUMBER}",
}


def run_example(script: Path, tmp_path: Path, smoke: bool) -> str:
    """The script's standard output, after checking it exited cleanly and printed its expected text."""
    # the repository root on the path: the examples import this checkout's graphc, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES_DIR.parent), os.environ.get("PYTHONPATH", "")]),
           "GRAPHC_EXAMPLE_SMOKE": "1" if smoke else "0"}
    extra = ["--html", str(tmp_path / "digits_cnn.html")] if script.name == "demo.py" else []
    result = subprocess.run([sys.executable, str(script), *extra], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    for expected in EXPECTED_OUTPUT.get(script.name, []):
        assert expected in result.stdout, f"{script.name} did not print {expected!r}:\n{result.stdout}"
    return result.stdout


def metric(script: Path, stdout: str) -> tuple[float, ...]:
    """The numbers of the script's metric line (see METRIC)."""
    found = re.search(METRIC[script.name], stdout)
    assert found, f"{script.name} did not print its metric line {METRIC[script.name]!r}:\n{stdout}"
    return tuple(float(group) for group in found.groups())


def test_examples_exist():
    names = {path.name for path in EXAMPLES}
    assert {"demo.py", "xor.py", *METRIC} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    stdout = run_example(script, tmp_path, smoke=True)
    if script.name in METRIC:
        metric(script, stdout)
    if script.name == "demo.py":
        assert (tmp_path / "digits_cnn.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# full runs: the targets docs/examples.md quotes, as conditions on the numbers of each metric line
TARGETS = {
    "linear_regression.py": lambda errors: max(errors) < 1e-3,
    "cubic_sin.py": lambda coefficients: np.allclose(coefficients, (0.0, 0.85, 0.0, -0.09), atol=0.03),
    "digits_mlp.py": lambda accuracy: accuracy[0] >= 0.97,
    "digits_cnn.py": lambda accuracy: accuracy[0] >= 0.98,
    "residual_mlp.py": lambda accuracy: accuracy[0] >= 0.98,
    "autoencoder.py": lambda mse: mse[0] < mse[1],  # better than PCA with as many numbers per image
    "transformer.py": lambda accuracy: accuracy[0] >= 0.99,
    "demo.py": lambda accuracy: accuracy[0] >= 0.98,
}
FULL_OUTPUT = {"xor.py": "XOR solved: True"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted([*TARGETS, *FULL_OUTPUT]))
def test_example_meets_its_target(name, tmp_path):
    script = EXAMPLES_DIR / name
    stdout = run_example(script, tmp_path, smoke=False)
    if name in FULL_OUTPUT:
        assert FULL_OUTPUT[name] in stdout, f"{name} did not print {FULL_OUTPUT[name]!r}:\n{stdout}"
    if name in TARGETS:
        assert TARGETS[name](metric(script, stdout)), f"{name} missed its target:\n{stdout}"
