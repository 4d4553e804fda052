"""Every script in examples/ runs to completion in a fresh interpreter and prints what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))

# text each example must print (examples not listed only have to exit cleanly)
EXPECTED_OUTPUT = {
    "demo.py": ["y(2, 5) = 11.652", "MSE"],
    "symbolic_vs_ad.py": ["∂y/∂x1 = x2 + 1/x1", "∂y/∂x2 = x1 - cos(x2)"],
    "ad_traces.py": ["= 11.652", "ẏ   = v̇₅                        = 5.5", "= -0.284 + 1 × 2 = 1.716"],
}


def test_examples_exist():
    assert "demo.py" in [path.name for path in EXAMPLES]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script):
    # the repository root on the path: the examples import this checkout's graphc, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES_DIR.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script)], cwd=EXAMPLES_DIR.parent, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    for expected in EXPECTED_OUTPUT.get(script.name, []):
        assert expected in result.stdout, f"{script.name} did not print {expected!r}:\n{result.stdout}"
