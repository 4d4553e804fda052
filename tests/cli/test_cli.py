"""The ``graphc`` command: dump, viz, compare and bench on small scripts, in-process and as ``python -m graphc``."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import cli
from graphc.cli import main
from graphc.graph.source import SourceLine

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
LECTURE = str(SCRIPTS / "lecture.py")


@pytest.fixture(autouse=True)
def fresh_default_graph():
    yield
    gc.reset_default_graph()  # the command leaves the script's graph as the default one


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``graphc *argv`` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def script(tmp_path, code, name="user_script.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


# -- dump ---------------------------------------------------------------------------------------------------
def test_dump_prints_the_grad_stage_of_what_build_returns(capsys):
    code, out, err = run(capsys, "dump", LECTURE)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "stage grad: graph: 18 nodes; outputs: sub, gradients/add_1, gradients/add"
    assert lines[1].split() == ["x1", ":", "float64[]", "=", "placeholder[dtype=float64,", "shape=()]",
                                "#", str(SourceLine(LECTURE, 7))]
    assert sum("gradients/" in line for line in lines[1:]) == 11


def test_dump_stages_and_no_sources(capsys):
    code, raw, _ = run(capsys, "dump", LECTURE, "--stage", "raw", "--no-sources")
    assert code == 0
    assert raw.splitlines()[0] == "stage raw: graph: 7 of 18 nodes; outputs: sub"
    assert "gradients/" not in raw and "lecture.py" not in raw and "#" not in raw
    assert raw.rstrip().endswith("sub : float64[] = sub(add, sin)")
    code, optimized, _ = run(capsys, "dump", LECTURE, "--stage=optimized", "--no-sources")
    assert code == 0 and optimized.startswith("stage optimized: graph: 12 nodes")
    code, kernels, _ = run(capsys, "dump", LECTURE, "--stage", "kernels", "--no-sources")
    assert code == 0 and kernels.startswith("graph: 12 nodes in 3 kernels")
    assert [line.split()[0] for line in kernels.splitlines() if line.startswith("  k")] == ["k0", "k1", "k2"]
    code, loops, _ = run(capsys, "dump", LECTURE, "--stage", "loops")
    assert code == 0 and loops.startswith("dims: d0 = run count")
    assert [line for line in loops.splitlines() if line.startswith("kernel ")] == ["kernel k0:", "kernel k1:",
                                                                                  "kernel k2:"]


def test_dump_equals_the_python_api(capsys):
    code, out, _ = run(capsys, "dump", LECTURE, "--stage", "optimized", "--no-sources")
    gc.reset_default_graph()
    x1 = gc.placeholder("float64", (), name="x1")
    x2 = gc.placeholder("float64", (), name="x2")
    y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    dx1, dx2 = gc.gradients(y, [x1, x2])
    expected = gc.viz.text(gc.viz.stage([y, dx1, dx2], "optimized"), sources=False)
    assert code == 0 and out == expected + "\n"


def test_a_script_without_build_shows_the_sinks_of_the_default_graph(capsys):
    code, out, _ = run(capsys, "dump", SCRIPTS / "default_graph.py", "--no-sources")
    assert code == 0
    assert "loss : float32[] = reduce_mean[axis=(0, 1), keepdims=False](square)" in " ".join(out.split())
    assert "matmul(x, W)" in out and out.splitlines()[0].endswith("loss")


def test_the_main_block_does_not_run_and_the_script_leaves_no_trace(capsys):
    path_before = list(sys.path)
    code, _, _ = run(capsys, "dump", LECTURE)  # lecture.py's main block raises SystemExit
    assert code == 0
    assert sys.path == path_before and cli.SCRIPT_MODULE not in sys.modules


def test_a_script_imports_modules_next_to_it_and_uses_dataclasses(capsys, tmp_path):
    script(tmp_path, "import graphc as gc\n\ndef helper(x):\n    return gc.exp(x) * 2\n", name="cli_helper_mod.py")
    path = script(tmp_path, """
        from dataclasses import dataclass

        import graphc as gc
        from cli_helper_mod import helper

        @dataclass
        class Config:
            width: int = 4

        def build():
            x = gc.placeholder("float32", (Config().width,), name="x")
            return helper(x)
        """)
    try:
        code, out, err = run(capsys, "dump", path, "--no-sources")
    finally:
        sys.modules.pop("cli_helper_mod", None)
    assert (code, err) == (0, "")
    assert "mul(exp, constant)" in " ".join(out.split())


def test_a_script_may_reset_the_default_graph(capsys, tmp_path):
    path = script(tmp_path, """
        import graphc as gc
        gc.placeholder("float32", (), name="stale")
        gc.reset_default_graph()
        x = gc.placeholder("float32", (), name="x")
        y = gc.sqrt(x, name="y")
        """)
    code, out, _ = run(capsys, "dump", path, "--no-sources")
    assert code == 0 and "stale" not in out and out.splitlines()[0].endswith("outputs: y")


# -- errors ---------------------------------------------------------------------------------------------------
def test_an_error_in_build_prints_the_users_traceback_and_exits_1(capsys):
    code, out, err = run(capsys, "dump", SCRIPTS / "shape_error.py")
    assert (code, out) == (1, "")
    assert err.startswith("graphc: shape_error.py: build() raised ShapeError:\nTraceback (most recent call last):\n")
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    assert frames[0].endswith("shape_error.py\", line 13, in build")  # the user's frames first
    assert frames[1].endswith("shape_error.py\", line 7, in helper")
    assert len(frames) == 2 and "cli.py" not in err and "importlib" not in err
    # graphc's frames below the user's are hidden: the message names the user's line
    assert err.rstrip().splitlines()[-2:] == [
        "  (3 frames inside graphc not shown)",
        f"graphc.errors.ShapeError: matmul 'matmul' created at {SourceLine(str(SCRIPTS / 'shape_error.py'), 7)} "
        "(a: float32[2,3], "
        "b: float32[2,3]): contraction sizes differ in [2,3] @ [2,3]: 3 vs 2"]


def test_an_error_while_the_script_runs_exits_1(capsys, tmp_path):
    path = script(tmp_path, """
        import graphc as gc

        def scale(x):
            return x * undefined_name

        y = scale(gc.placeholder("float32", (), name="x"))
        """)
    code, _, err = run(capsys, "dump", path)
    assert code == 1
    assert err.startswith("graphc: running user_script.py raised NameError:")
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    assert [f.rsplit(" in ", 1)[1] for f in frames] == ["<module>", "scale"]
    assert err.rstrip().endswith("NameError: name 'undefined_name' is not defined")


def test_other_errors_keep_the_frames_below_the_users(capsys, tmp_path):
    path = script(tmp_path, """
        import json

        def build():
            return json.loads("{")
        """)
    code, _, err = run(capsys, "dump", path)
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    assert code == 1 and frames[0].endswith("line 5, in build") and "json" in frames[1] and len(frames) >= 3
    assert err.rstrip().splitlines()[-1].startswith("json.decoder.JSONDecodeError: ")


def test_a_syntax_error_names_the_line(capsys, tmp_path):
    path = script(tmp_path, "import graphc as gc\nx = (1,\n")
    code, _, err = run(capsys, "dump", path)
    assert code == 1 and "SyntaxError" in err and f'File "{path}", line 2' in err


@pytest.mark.parametrize("command", ["dump", "viz", "compare"])
def test_a_missing_script_exits_2(capsys, tmp_path, command):
    extra = ["-o", tmp_path / "g.html"] if command == "viz" else []
    code, out, err = run(capsys, command, tmp_path / "nowhere.py", *extra)
    assert (code, out) == (2, "")
    assert err == f"graphc {command}: error: no such script: {tmp_path / 'nowhere.py'}\n"


def test_a_script_that_gives_no_graph_exits_2(capsys):
    code, _, err = run(capsys, "dump", SCRIPTS / "empty.py")
    assert code == 2
    assert "empty.py gives no graph: it defines no build() function and the default graph is empty" in err


@pytest.mark.parametrize(("returned", "described"), [
    ("None", "build() returned None and the default graph is empty"),
    ("42", "it returned a int"),
    ("[]", "it returned a list of nothing"),
    ("{'a': 1.5}", "it returned a dict of float"),
])
def test_a_build_result_graphc_cannot_use_exits_2(capsys, tmp_path, returned, described):
    path = script(tmp_path, f"def build():\n    return {returned}\n")
    code, _, err = run(capsys, "dump", path)
    assert code == 2 and described in err and err.startswith("graphc dump: error: user_script.py")


def test_build_that_is_not_a_function_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "dump", script(tmp_path, "build = 3\n"))
    assert code == 2 and "'build' is a int, not a function" in err


def test_usage_errors_exit_2(capsys):
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "dump", LECTURE, "--stage", "final")
    assert code == 2 and "invalid choice: 'final'" in err
    code, _, err = run(capsys, "viz", LECTURE)
    assert code == 2 and "-o/--output" in err


@pytest.mark.parametrize("argv", [[], ["dump"], ["viz"], ["compare"], ["bench"]])
def test_help(capsys, argv):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0 and out.startswith(f"usage: graphc {' '.join(argv)}".rstrip())
    if argv in ([], ["dump"], ["viz"], ["compare"]):
        assert "graphc_script" in " ".join(out.split())  # how the script runs and gives its graph


# -- viz ---------------------------------------------------------------------------------------------------
@pytest.fixture
def render_calls(monkeypatch):
    """gc.viz.render replaced by a recorder that writes a stub file."""
    calls = []

    def render(target, path, stage=None):
        calls.append((target, path, stage))
        Path(path).write_text("<html></html>")
        return Path(path)

    monkeypatch.setattr(gc.viz, "render", render)
    return calls


def test_viz_calls_render_with_the_targets_path_and_stage(capsys, tmp_path, render_calls):
    out_path = tmp_path / "g.html"
    code, out, _ = run(capsys, "viz", LECTURE, "-o", out_path, "--stage", "optimized")
    assert code == 0 and out == f"wrote {out_path}\n" and out_path.exists()
    (target, path, stage), = render_calls
    assert [t.name for t in target] == ["sub", "gradients/add_1", "gradients/add"]
    assert (path, stage) == (out_path, "optimized")
    run(capsys, "viz", SCRIPTS / "default_graph.py", "-o", out_path)
    assert isinstance(render_calls[1][0], gc.Graph) and render_calls[1][2] is None
    run(capsys, "viz", LECTURE, "-o", out_path, "--stage", "grad", "--stage", "optimized")
    assert render_calls[2][2] == ("grad", "optimized")


@pytest.mark.parametrize(("argv", "said"), [
    (["-o", "g.pdf"], "cannot write 'g.pdf': the output's suffix picks the format, one of .svg, .png, .html"),
    (["-o", "g.svg", "--stage", "raw", "--stage", "kernels"], "several stages (raw, kernels) need an .html page"),
])
def test_viz_checks_its_arguments_before_running_the_script(capsys, tmp_path, render_calls, argv, said):
    code, _, err = run(capsys, "viz", SCRIPTS / "shape_error.py", *argv)
    assert code == 2 and said in err and render_calls == []


def test_viz_reports_errors_from_render(capsys, tmp_path, monkeypatch):
    def render(target, path, stage=None):
        raise gc.errors.GraphcError("the Graphviz program 'dot' was not found")

    monkeypatch.setattr(gc.viz, "render", render)
    code, _, err = run(capsys, "viz", LECTURE, "-o", tmp_path / "g.svg")
    assert code == 1 and err == "graphc viz: error: GraphcError: the Graphviz program 'dot' was not found\n"


def test_viz_writes_a_real_html_page_and_dot_file(capsys, tmp_path):
    page = tmp_path / "g.html"
    code, out, err = run(capsys, "viz", LECTURE, "-o", page, "--stage", "grad", "--stage", "optimized")
    assert (code, out, err) == (0, f"wrote {page}\n", "")
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    code, _, _ = run(capsys, "viz", LECTURE, "-o", tmp_path / "g.dot", "--stage", "raw")
    assert code == 0 and (tmp_path / "g.dot").read_text(encoding="utf-8").startswith("digraph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_viz_writes_an_svg(capsys, tmp_path):
    code, _, _ = run(capsys, "viz", SCRIPTS / "default_graph.py", "-o", tmp_path / "g.svg")
    assert code == 0 and "<svg" in (tmp_path / "g.svg").read_text(encoding="utf-8")


# -- compare -----------------------------------------------------------------------------------------------
def test_compare_prints_the_report(capsys):
    code, out, err = run(capsys, "compare", SCRIPTS / "compare_lecture.py")
    assert (code, err) == (0, "")
    assert out.startswith("∂/∂x of x1*x2 + log(x1) - sin(x2)\n")
    rows = [line.split() for line in out.splitlines()[4:]]
    assert [(r[0], r[-5]) for r in rows if r[1] == "reverse"] == [("x1", "5.5"), ("x2", "1.71633781454")]
    assert len(rows) == 10 and {r[0] for r in rows} == {"x1", "x2"}


def test_compare_accepts_a_dict(capsys, tmp_path):
    path = script(tmp_path, """
        import numpy as np
        import graphc as gc

        def build():
            u = gc.placeholder("float64", (3,), name="u")
            return {"y": gc.tanh(u) * u, "xs": u, "feed_dict": {u: np.array([0.1, 0.2, 0.3])}}
        """)
    code, out, _ = run(capsys, "compare", path)
    u = np.array([0.1, 0.2, 0.3])
    reverse = next(line.split() for line in out.splitlines() if line.split()[:2] == ["u", "reverse"])
    assert code == 0 and reverse[3] == "…" and reverse[4:6] == ["(3,)", "0.0e+00"]
    assert float(reverse[2]) == pytest.approx(np.tanh(u[0]) + u[0] / np.cosh(u[0]) ** 2)


@pytest.mark.parametrize(("name", "said"), [
    ("lecture.py", "build() returned a dict without ['feed_dict', 'xs']"),
    ("default_graph.py", "default_graph.py has no build() function"),
])
def test_compare_states_its_contract(capsys, name, said):
    code, _, err = run(capsys, "compare", SCRIPTS / name)
    assert code == 2 and said in err and "(y, xs, feed_dict)" in err


def test_compare_of_a_graph_sympy_cannot_take_exits_1(capsys, tmp_path):
    path = script(tmp_path, """
        import graphc as gc

        def build():
            x = gc.placeholder("float64", (2, 2), name="x")
            return gc.reduce_sum(x @ x), [x], {x: [[1.0, 2.0], [3.0, 4.0]]}
        """)
    code, out, err = run(capsys, "compare", path)
    assert (code, out) == (1, "") and err.startswith("graphc compare: error: SymbolicError: ")


# -- bench ---------------------------------------------------------------------------------------------------
def test_bench_quick_prints_a_row_per_workload(capsys):
    code, out, err = run(capsys, "bench", "--quick")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    assert header.split()[1:4] == ["numpy", "graphc", "numpy"]
    rows = [line for line in lines if line[:1] == "W" and line[1:2].isdigit()]
    assert [row[:2] for row in rows] == ["W1", "W2", "W3", "W4", "W5", "W6"]
    for row in rows:  # numpy's time, then each other column's time and its ratio to numpy's
        assert row.count(" ms") >= 2 and row.count("×)") == row.count(" ms") - 1
    assert any(line.startswith("bandwidth floor of W2: ") and line.endswith("×") for line in lines)


def test_bench_only_one_workload(capsys):
    code, out, _ = run(capsys, "bench", "--quick", "--only", "W4")
    assert code == 0 and [line[:2] for line in out.splitlines() if line[:1] == "W"] == ["W4"]
    code, _, err = run(capsys, "bench", "--only", "W9")
    assert code == 2 and "invalid choice: 'W9'" in err


def test_bench_without_tools_bench_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "BENCH_SCRIPT", tmp_path / "tools" / "bench" / "run.py")
    code, _, err = run(capsys, "bench")
    assert code == 2 and "source checkout" in err


def test_bench_refuses_to_time_wrong_results():
    with cli._importable(cli.BENCH_SCRIPT):
        bench = cli._run_file(cli.BENCH_SCRIPT, cli.SCRIPT_MODULE, "loading the bench")
        bench.check_close("W0", "numpy", [np.ones(3)], [np.ones(3)])
        with pytest.raises(bench.MismatchError, match="W0 output 0 from graphc numpy differs from numpy by up to 0.5"):
            bench.check_close("W0", "graphc numpy", [np.ones(3)], [np.array([1.0, 1.5, 1.0])])


# -- as a program ------------------------------------------------------------------------------------------
def test_python_dash_m_graphc(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "graphc", "dump", LECTURE, "--stage", "raw", "--no-sources"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == "stage raw: graph: 7 of 18 nodes; outputs: sub"
    failed = subprocess.run([sys.executable, "-m", "graphc", "dump", str(SCRIPTS / "shape_error.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert failed.returncode == 1 and "in helper" in failed.stderr and "ShapeError" in failed.stderr


def test_the_demo_example_dumps(capsys):
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
    assert main(["dump", str(demo), "--stage", "optimized", "--no-sources"]) == 0
    out = capsys.readouterr().out
    assert "add(x2, gradients/log_grad/div)" in out and "sub(x1, gradients/sin_grad/cos)" in out


@pytest.mark.parametrize("script, loss", [
    ("digits_cnn.py", "sparse_softmax_cross_entropy"), ("digits_mlp.py", "sparse_softmax_cross_entropy"),
    ("transformer.py", "sparse_softmax_cross_entropy"), ("residual_mlp.py", "sigmoid_cross_entropy"),
    ("autoencoder.py", "sigmoid_cross_entropy")])
def test_training_examples_show_their_training_graph(script, loss, capsys):
    # their build() gives the training step (loss and Adam update), without training anything
    path = Path(__file__).resolve().parents[2] / "examples" / script
    assert main(["dump", str(path), "--stage", "raw", "--no-sources"]) == 0
    out = capsys.readouterr().out
    assert "Adam" in out and f"= {loss}(" in out
