"""Cases for conv2d and its gradient ops, against plain float64 numpy written with explicit loops.

The expected values loop over the kernel offsets (and, for dx, over the output positions), the textbook
definition, independently of the ops' sliding-window references. Each op has small float64 cases (at most
40 float elements over all inputs, ``like`` included) so its vjp, jvp and second derivatives are checked
by finite differences; the float32 cases are larger and cover the lowering's paths (im2col, 1×1 GEMM).
"""

import numpy as np

from graphc.ops import conv
from tests.ops.harness import OpCase, uniform

F32 = {"rtol": 1e-5, "atol": 1e-5}
F64 = {"rtol": 1e-12, "atol": 1e-12}


# -- plain numpy, float64 --------------------------------------------------------------------------------
def _pads(size, kernel, stride, dilation, padding):
    """((before, after), output size) along one axis; padding is "valid", "same" or (before, after)."""
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        out = (size + stride - 1) // stride
        total = max((out - 1) * stride + span - size, 0)
        return (total // 2, total - total // 2), out
    before, after = (0, 0) if padding == "valid" else padding
    return (before, after), (size + before + after - span) // stride + 1


def _setup(x_shape, kernel, stride, padding, dilation):
    """Per axis (pads, output size); ``padding`` is a string or ((t, b), (l, r))."""
    per_axis = (padding, padding) if isinstance(padding, str) else padding
    return [_pads(x_shape[1 + a], kernel[a], stride[a], dilation[a], per_axis[a]) for a in range(2)]


def _reads(x_shape, kernel, stride, padding, dilation):
    """For every kernel offset (kh, kw): the (output position, input position) pairs it reads, per axis."""
    axes = _setup(x_shape, kernel, stride, padding, dilation)
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            pairs = []
            for a, k in enumerate((kh, kw)):
                (before, _), out = axes[a]
                pairs.append([(o, o * stride[a] - before + k * dilation[a]) for o in range(out)])
            yield kh, kw, pairs


def _conv64(x, w, stride, padding, dilation):
    axes = _setup(x.shape, w.shape[:2], stride, padding, dilation)
    out = np.zeros((x.shape[0], axes[0][1], axes[1][1], w.shape[3]))
    for kh, kw, (rows, cols) in _reads(x.shape, w.shape[:2], stride, padding, dilation):
        for oh, h in rows:
            for ow, col in cols:
                if 0 <= h < x.shape[1] and 0 <= col < x.shape[2]:
                    out[:, oh, ow, :] += x[:, h, col, :].astype(np.float64) @ w[kh, kw].astype(np.float64)
    return out.astype(x.dtype)


def _backprop_input64(dy, w, like, stride, padding, dilation):
    dx = np.zeros(like.shape)
    for kh, kw, (rows, cols) in _reads(like.shape, w.shape[:2], stride, padding, dilation):
        for oh, h in rows:
            for ow, col in cols:
                if 0 <= h < like.shape[1] and 0 <= col < like.shape[2]:
                    dx[:, h, col, :] += dy[:, oh, ow, :].astype(np.float64) @ w[kh, kw].T.astype(np.float64)
    return dx.astype(dy.dtype)


def _backprop_filter64(x, dy, kernel, stride, padding, dilation):
    dw = np.zeros((*kernel, x.shape[3], dy.shape[3]))
    for kh, kw, (rows, cols) in _reads(x.shape, kernel, stride, padding, dilation):
        for oh, h in rows:
            for ow, col in cols:
                if 0 <= h < x.shape[1] and 0 <= col < x.shape[2]:
                    dw[kh, kw] += x[:, h, col, :].astype(np.float64).T @ dy[:, oh, ow, :].astype(np.float64)
    return dw.astype(x.dtype)


def _output_shape(x_shape, kernel, filters, stride, padding, dilation):
    axes = _setup(x_shape, kernel, stride, padding, dilation)
    return (x_shape[0], axes[0][1], axes[1][1], filters)


# -- cases -----------------------------------------------------------------------------------------------
# (label, x shape, w shape, stride, padding, dilation, dtype); stride and dilation as pairs, padding as the
# public function takes it
GEOMETRIES = [
    ("valid", (2, 5, 5, 3), (3, 3, 3, 4), (1, 1), "valid", (1, 1), "float32"),
    ("stride2-same", (3, 7, 6, 3), (3, 3, 3, 2), (2, 2), "same", (1, 1), "float32"),
    ("explicit-asymmetric", (1, 5, 6, 1), (2, 3, 1, 3), (1, 1), ((1, 2), (0, 1)), (1, 1), "float32"),
    ("dilation2-same", (2, 7, 7, 3), (3, 2, 3, 2), (1, 1), "same", (2, 2), "float32"),
    ("1x1", (3, 4, 5, 3), (1, 1, 3, 4), (1, 1), "valid", (1, 1), "float32"),
    ("1x1-stride2", (2, 5, 5, 3), (1, 1, 3, 2), (2, 2), "valid", (1, 1), "float32"),
    ("mixed", (2, 8, 7, 3), (3, 3, 3, 4), (2, 1), ((0, 1), (2, 0)), (1, 2), "float64"),
    ("small-same", (1, 3, 3, 1), (2, 2, 1, 2), (1, 1), "same", (1, 1), "float64"),
    ("small-stride2", (1, 4, 4, 2), (2, 2, 2, 1), (2, 2), ((1, 0), (0, 1)), (1, 1), "float64"),
    ("small-dilation2", (1, 4, 3, 1), (2, 2, 1, 2), (1, 1), "valid", (2, 2), "float64"),
    ("small-1x1", (2, 2, 2, 2), (1, 1, 2, 2), (1, 1), "same", (1, 1), "float64"),
]


def _tolerance(dtype):
    return F32 if dtype == "float32" else F64


def _conv2d_cases():
    cases = []
    for label, x_shape, w_shape, stride, padding, dilation, dtype in GEOMETRIES:
        geometry = {"stride": stride, "padding": padding, "dilation": dilation}
        cases.append(OpCase(
            conv.CONV2D, build=lambda x, w, geometry=geometry: conv.conv2d(x, w, **geometry),
            make_inputs=lambda rng, x_shape=x_shape, w_shape=w_shape, dtype=dtype: [
                uniform(rng, x_shape, dtype), uniform(rng, w_shape, dtype)],
            expected=lambda x, w, geometry=geometry: _conv64(x, w, **geometry),
            label=label, **_tolerance(dtype)))
    return cases


def _backprop_input_cases():
    cases = []
    for label, x_shape, w_shape, stride, padding, dilation, dtype in GEOMETRIES:
        geometry = {"stride": stride, "padding": padding, "dilation": dilation}
        dy_shape = _output_shape(x_shape, w_shape[:2], w_shape[3], stride, padding, dilation)
        cases.append(OpCase(
            conv.CONV2D_BACKPROP_INPUT,
            build=lambda dy, w, like, geometry=geometry: conv.conv2d_backprop_input(dy, w, like, **geometry),
            make_inputs=lambda rng, x_shape=x_shape, w_shape=w_shape, dy_shape=dy_shape, dtype=dtype: [
                uniform(rng, dy_shape, dtype), uniform(rng, w_shape, dtype), uniform(rng, x_shape, dtype)],
            expected=lambda dy, w, like, geometry=geometry: _backprop_input64(dy, w, like, **geometry),
            label=label, **_tolerance(dtype)))
    return cases


def _backprop_filter_cases():
    cases = []
    for label, x_shape, w_shape, stride, padding, dilation, dtype in GEOMETRIES:
        geometry = {"stride": stride, "padding": padding, "dilation": dilation}
        kernel = w_shape[:2]
        dy_shape = _output_shape(x_shape, kernel, w_shape[3], stride, padding, dilation)
        cases.append(OpCase(
            conv.CONV2D_BACKPROP_FILTER,
            build=lambda x, dy, kernel=kernel, geometry=geometry: conv.conv2d_backprop_filter(x, dy, kernel,
                                                                                               **geometry),
            make_inputs=lambda rng, x_shape=x_shape, dy_shape=dy_shape, dtype=dtype: [
                uniform(rng, x_shape, dtype), uniform(rng, dy_shape, dtype)],
            expected=lambda x, dy, kernel=kernel, geometry=geometry: _backprop_filter64(x, dy, kernel, **geometry),
            label=label, **_tolerance(dtype)))
    return cases


CASES = _conv2d_cases() + _backprop_input_cases() + _backprop_filter_cases()
