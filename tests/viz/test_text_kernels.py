"""gc.viz.text grouped by kernel: each kernel's id, kind and iteration space, its nodes, and why each value
leaves it."""

import graphc as gc
from graphc.passes.fusion import plan_kernels


def build_softmax_loss():
    """A softmax written by hand, then its mean: a row kernel and a total."""
    g = gc.Graph()
    with g.as_default():
        z = gc.placeholder("float32", (None, 10), name="z")
        m = gc.reduce_max(z, axis=1, keepdims=True)
        e = gc.exp(z - m)
        y = e / gc.reduce_sum(e, axis=1, keepdims=True)
        loss = gc.reduce_mean(y)
    return g, y, loss


SOFTMAX_LOSS_GOLDEN = """\
graph: 7 nodes in 2 kernels; outputs: div, reduce_mean
  k0 reduction [?,10] axes=(1,) root=reduce_max
    reduce_max  : float32[?,1]  = reduce_max[axis=(1,), keepdims=True](z)
    sub         : float32[?,10] = sub(z, reduce_max)
    exp         : float32[?,10] = exp(sub)
    reduce_sum  : float32[?,1]  = reduce_sum[axis=(1,), keepdims=True](exp)
    div         : float32[?,10] = div(exp, reduce_sum)
    cut div → k1: shape mismatch (div reads reduce_sum and stays in its kernel; reduce_mean's kernel reduces \
other axes)
    cut div → out: fetched (an output of the run)
  k1 reduction [?,10] axes=(0, 1) root=reduce_mean
    reduce_mean : float32[]     = reduce_mean[axis=(0, 1), keepdims=False](div)
    cut reduce_mean → out: fetched (an output of the run)
  sources
    z           : float32[?,10] = placeholder[dtype=float32, shape=(None, 10)]"""


def test_golden_kernel_dump():
    _, y, loss = build_softmax_loss()
    assert gc.viz.text([y, loss], sources=False, kernels=True) == SOFTMAX_LOSS_GOLDEN


def test_a_partition_prints_grouped_without_asking():
    g, y, loss = build_softmax_loss()
    partition = plan_kernels(g, [y, loss])
    assert gc.viz.text(partition, sources=False) == SOFTMAX_LOSS_GOLDEN


def test_the_plain_dump_is_unchanged_unless_kernels_are_asked_for():
    g, y, loss = build_softmax_loss()
    plain = gc.viz.text([y, loss], sources=False)
    assert plain == gc.viz.text([y, loss], sources=False, kernels=False)
    assert "k0" not in plain and plain.splitlines()[0] == "graph: 7 nodes; outputs: div, reduce_mean"


def test_an_optimized_result_prints_its_partition():
    _, y, loss = build_softmax_loss()
    result = gc.optimize([y, loss])
    lines = gc.viz.text(result, sources=False).splitlines()
    assert lines[0].startswith("graph: ") and " in 2 kernels; " in lines[0]
    assert lines[1].startswith("  k0 reduction [?,10] axes=(1,)")
    assert any(line.startswith("    cut ") and line.endswith("fetched (an output of the run)") for line in lines)


def test_the_source_column_lines_up_in_the_kernel_view():
    g, y, loss = build_softmax_loss()
    lines = gc.viz.text(plan_kernels(g, [y, loss])).splitlines()
    equations = [line for line in lines if " = " in line]
    assert len({line.index("   # ") for line in equations}) == 1
    assert all(line.split("# ")[-1].startswith("tests/viz/test_text_kernels.py:") or "test_text_kernels.py:" in line
               for line in equations)


def test_a_whole_graph_with_a_control_group_and_an_opaque_op():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None, 3), name="x")
        v = gc.Variable([1.0, 2.0, 3.0], name="v")
        both = gc.concat([gc.sin(x), x], axis=0)
        step = gc.group(gc.assign(v, v - 0.1 * gc.reduce_sum(both, axis=0)), name="step")
    text = gc.viz.text(g, sources=False, kernels=True)
    headers = [line.strip() for line in text.splitlines() if line.startswith("  ") and not line.startswith("    ")]
    assert headers == ["k0 elementwise [?,3] root=sin", "k1 opaque root=concat",
                       "k2 reduction [?,3] axes=(0,) root=reduce_sum", "sources", "control"]
    assert "cut assign → out: variable update (written to v)" in text
    assert "cut sin → k1: opaque op (concat 'concat' is lowered on its own)" in text
    assert " ".join(text.splitlines()[-1].split()) == f"{step.name} : () = group(^assign)"
