"""The cuda backend's host side, without a GPU: the clear error where pycuda, a driver or a GPU is missing,
nvcc compilation with its disk cache, the row-major to column-major cuBLAS mapping, and the host's GEMM loops."""

import ctypes
import subprocess
import sys
import types

import numpy as np
import pytest

import graphc as gc
from graphc.backends.compiled import lower_plan
from graphc.backends.cuda import cublas as cublas_module
from graphc.backends.cuda import nvcc as cuda_compile
from graphc.backends.cuda.cublas import _BATCHED, _FUNCTIONS, OP_T, ColumnMajorGemm, batched, column_major
from graphc.backends.cuda.executable import gemm_iterations, gpu
from graphc.backends.cuda.render import GemmCall, render
from graphc.errors import BackendUnavailableError, CompileError
from graphc.lower import ir
from graphc.runtime.plan import make_plan
from tests.backends.cuda.emulate import column_major_gemm

KERNEL = r"""extern "C" __global__ void scale(float* __restrict__ b0, const long long* __restrict__ dims,
                                     int* __restrict__ status) {
  if (*status) return;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < dims[1];
       i += (long long)gridDim.x * blockDim.x) b0[i] = b0[i] * 2.0f + 1.0f;
}
"""
try:
    NVCC = cuda_compile.find_nvcc()
except BackendUnavailableError:
    NVCC = None
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="no CUDA toolkit (nvcc) on this machine")


@pytest.fixture
def fresh_gpu():
    """gpu() is cached per process: each test sees a fresh lookup, and leaves none behind."""
    gpu.cache_clear()
    yield
    gpu.cache_clear()


# -- 1. a clear error without pycuda, a driver or a GPU ---------------------------------------------------
def test_without_pycuda_the_session_says_what_to_install(monkeypatch, fresh_gpu):
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda now fails, installed or not
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(BackendUnavailableError, match=r"needs pycuda.*pip install 'graphc\[cuda\]'.*CUDA toolkit"):
        gc.Session(backend="cuda")
    assert issubclass(BackendUnavailableError, CompileError)


def _fake_driver(count: int, failing: bool = False) -> types.ModuleType:
    driver = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    def init() -> None:
        if failing:
            raise Error("cuInit failed: no CUDA-capable device is detected")

    driver.Error, driver.init = Error, init
    driver.Device = types.SimpleNamespace(count=lambda: count)
    return driver


@pytest.mark.parametrize(("driver", "message"), [(_fake_driver(0), "no CUDA GPU"),
                                                 (_fake_driver(1, failing=True), "no usable NVIDIA driver")])
def test_without_a_gpu_or_driver_the_session_says_so(monkeypatch, fresh_gpu, driver, message):
    package = types.ModuleType("pycuda")
    package.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    with pytest.raises(BackendUnavailableError, match=message):
        gc.Session(backend="cuda")


def test_importing_graphc_does_not_import_pycuda():
    code = ("import sys, graphc, graphc.backends.cuda.executable, graphc.backends.cuda.cublas; "
            "print('pycuda' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- 2. nvcc and the disk cache ----------------------------------------------------------------------------
def test_cache_keys_name_everything_the_binary_depends_on():
    key = cuda_compile.cache_key(KERNEL, "sm_90", "release 13.0")
    assert key == cuda_compile.cache_key(KERNEL, "sm_90", "release 13.0")
    others = [cuda_compile.cache_key(KERNEL + " ", "sm_90", "release 13.0"),
              cuda_compile.cache_key(KERNEL, "sm_80", "release 13.0"),
              cuda_compile.cache_key(KERNEL, "sm_90", "release 12.4"),
              cuda_compile.cache_key(KERNEL, "sm_90", "release 13.0", output="ptx")]
    assert len({key, *others}) == 5


@needs_nvcc
def test_nvcc_compiles_and_the_disk_cache_serves_it_again(tmp_path):
    from graphc.backends.compiled import CompileReport

    first, second = CompileReport(), CompileReport()
    compiled = cuda_compile.compile_module(KERNEL, "sm_80", first, output="ptx", cache_dir=tmp_path)
    text = compiled.binary.decode()
    assert ".target sm_80" in text and ".entry scale" in text and compiled.warnings == ""
    assert first.cache == "miss, stored" and "nvcc" in first.stages
    again = cuda_compile.compile_module(KERNEL, "sm_80", second, output="ptx", cache_dir=tmp_path)
    assert second.cache == "hit" and again.binary == compiled.binary and "nvcc" not in second.stages
    # a damaged entry is a miss, rebuilt, never a wrong hit
    (entry,) = tmp_path.glob("??/*.gcc")
    entry.write_bytes(entry.read_bytes()[:-3] + b"xyz")
    third = CompileReport()
    rebuilt = cuda_compile.compile_module(KERNEL, "sm_80", third, output="ptx", cache_dir=tmp_path)
    assert rebuilt.binary == compiled.binary
    assert "checksum mismatch" in third.cache and "stored" in third.cache


@needs_nvcc
def test_nvcc_rejecting_the_source_is_a_compile_error():
    with pytest.raises(CompileError, match=r"(?s)nvcc rejected.*undefined_name"):
        cuda_compile.nvcc_compile(KERNEL.replace("2.0f", "undefined_name"), "sm_80", "ptx")


@needs_nvcc
def test_a_training_step_renders_to_cuda_c_that_nvcc_compiles(tmp_path):
    """The executable's front half on a whole program: lower as llvm does, render, compile for sm_90."""
    with gc.Graph().as_default() as graph:
        x = gc.placeholder("float32", (None, 6), name="x")
        w = gc.Variable(np.ones((6, 3), np.float32), name="w")
        loss = gc.reduce_mean(gc.square(gc.nn.relu(x @ w)))
        (grad,) = gc.gradients(loss, [w])
        train = gc.assign(w, w - 0.1 * grad)
    _, lowered = lower_plan(make_plan(graph, (loss, train), frozenset({x.node})))
    module = render(lowered.program)
    assert any(isinstance(step, GemmCall) for step in module.steps)
    compiled = cuda_compile.compile_module(module.source, "sm_90", output="ptx", cache_dir=tmp_path)
    assert b".target sm_90" in compiled.binary


# -- 3. cuBLAS argument mapping and the host's GEMM loops --------------------------------------------------
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_row_major_gemm_maps_to_column_major_cublas(trans_a, trans_b, rng):
    """Row-major operands with padded rows (ld > columns) at offsets in one memory, as in the arena."""
    m, n, k, pad = 3, 5, 4, 2
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    a_stored, b_stored = rng.normal(size=(a_rows, a_cols + pad)), rng.normal(size=(b_rows, b_cols + pad))
    c_stored = rng.normal(size=(m, n + pad))
    parts = [np.zeros(7), a_stored.ravel(), b_stored.ravel(), c_stored.ravel()]
    a_at, b_at, c_at = np.cumsum([len(p) for p in parts])[:3]
    memory = np.concatenate(parts)
    a, b = a_stored[:, :a_cols], b_stored[:, :b_cols]
    expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2.0 * c_stored[:, :n]
    call = column_major(trans_a, trans_b, m, n, k, a_at, a_cols + pad, b_at, b_cols + pad, c_at, n + pad)
    column_major_gemm(call, memory, memory, memory, 0.5, 2.0)  # what cuBLAS computes there
    result = memory[c_at:].reshape(m, n + pad)
    np.testing.assert_allclose(result[:, :n], expected, rtol=1e-12)
    np.testing.assert_array_equal(result[:, n:], c_stored[:, n:])  # the padding is not written
    np.testing.assert_array_equal(memory[:c_at], np.concatenate(parts[:3]))  # nor A or B


def test_an_empty_matrix_gets_leading_dimensions_cublas_accepts():
    call = column_major(False, False, 4, 3, 0, 0, 0, 0, 3, 0, 3)
    assert (call.m, call.n, call.k, call.lda, call.ldb) == (3, 4, 0, 3, 1)


def test_the_host_runs_a_gemms_enclosing_loops_with_their_run_time_extents():
    outer, inner = ir.Index("i0"), ir.Index("i1")
    buffer = ir.Buffer("tmp0", "float32", (ir.Dim(1),), "temp")
    gemm = ir.Gemm("float32", False, False, ir.const(2), ir.const(2), ir.const(2), buffer,
                   ir.add(ir.mul(outer, ir.const(10)), inner), ir.const(2), buffer, ir.const(0), ir.const(2),
                   buffer, ir.const(0), ir.const(2))
    call = GemmCall(gemm, ((outer, ir.Dim(1)), (inner, ir.add(outer, ir.const(1)))))
    iterations = gemm_iterations(call, np.array([0, 3]))
    assert [(v[outer], v[inner]) for v in iterations] == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    from graphc.backends.cuda.executable import _bind

    assert [ir.evaluate_size(_bind(gemm.a_offset, v), [0, 3]) for v in iterations] == [0, 10, 11, 20, 21, 22]
    assert gemm_iterations(call, np.array([0, 0])) == []


class _FakeCublasLibrary:
    """libcublas as far as Cublas calls it, computing with numpy on the addresses it is given: checks the
    ctypes calls (argument order, scalars by reference, the column-major mapping) without a GPU."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        for dtype, (name, _) in _FUNCTIONS.items():
            setattr(self, name, self._gemm(name, np.dtype(dtype)))
            setattr(self, _BATCHED[dtype], self._batched(_BATCHED[dtype], getattr(self, name)))

    def cublasCreate_v2(self, handle) -> int:  # noqa: N802 - the C names
        handle._obj.value = 1234
        return 0

    def cublasSetStream_v2(self, handle, stream) -> int:  # noqa: N802
        return 0 if handle.value == 1234 and stream is None else 7

    def cublasDestroy_v2(self, handle) -> int:  # noqa: N802
        return 0

    def _gemm(self, name: str, dtype: np.dtype):
        def gemm(handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) -> int:
            self.calls.append(name)
            assert handle.value == 1234

            def flat(address: int, rows: int, columns: int, ld: int) -> np.ndarray:
                size = ld * (columns - 1) + rows if rows and columns else 0
                return np.ctypeslib.as_array((np.ctypeslib.as_ctypes_type(dtype) * max(size, 1)).from_address(address))

            a_shape = (k, m) if transa == OP_T else (m, k)
            b_shape = (n, k) if transb == OP_T else (k, n)
            call = ColumnMajorGemm(transa, transb, m, n, k, 0, lda, 0, ldb, 0, ldc)
            column_major_gemm(call, flat(a, *a_shape, lda), flat(b, *b_shape, ldb), flat(c, m, n, ldc),
                              alpha._obj.value, beta._obj.value)
            return 0
        return gemm


    def _batched(self, name: str, gemm):
        def batched(handle, transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                    stride_c, count) -> int:
            self.calls.append(name)
            itemsize = ctypes.sizeof(alpha._obj)
            for i in range(count):
                gemm(handle, transa, transb, m, n, k, alpha, a + i * stride_a * itemsize, lda,
                     b + i * stride_b * itemsize, ldb, beta, c + i * stride_c * itemsize, ldc)
            return 0
        return batched


def test_runs_of_gemms_at_constant_strides_become_batched_calls():
    def gemm(a: int, b: int, c: int, m: int = 4) -> tuple[ColumnMajorGemm, int]:
        return ColumnMajorGemm(0, 0, m, 4, 4, a, 4, b, 4, c, 4), 16

    runs = batched([gemm(0, 0, 0), gemm(16, 0, 16), gemm(32, 0, 32), gemm(48, 5, 48),  # b's stride breaks: a new run
                    gemm(64, 10, 64), gemm(80, 10, 80, m=3)])  # a new shape: a new run
    assert [(first.a, first.b, batch.count, batch.strides) for first, batch in runs] == [
        (0, 0, 3, (16, 0, 16)), (48, 5, 2, (16, 5, 16)), (80, 10, 1, (0, 0, 0))]
    accumulating = batched([gemm(0, 0, 0), gemm(16, 16, 0), gemm(32, 32, 0)])  # one C written three times
    assert [batch.count for _, batch in accumulating] == [1, 1, 1]
    overlapping = batched([gemm(0, 0, 0), gemm(16, 16, 8)])  # C regions 16 elements long, 8 apart
    assert [batch.count for _, batch in overlapping] == [1, 1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_batched_calls_compute_each_product(dtype, rng, monkeypatch):
    """Cublas.gemm's batched ctypes call through the stand-in: C_i = A_i·B_i for 3 row-major products."""
    fake = _FakeCublasLibrary()
    monkeypatch.setattr(cublas_module, "library", lambda: fake)
    a, b = rng.normal(size=(3, 2, 5)).astype(dtype), rng.normal(size=(3, 5, 4)).astype(dtype)
    c = np.zeros((3, 2, 4), dtype)
    call = column_major(False, False, 2, 4, 5, a.ctypes.data, 5, b.ctypes.data, 4, c.ctypes.data, 4)
    cublas_module.Cublas().gemm(dtype, call, 1.0, 0.0, cublas_module.Batch(3, (20, 10, 8)))
    np.testing.assert_allclose(c, a @ b, rtol=1e-6)
    assert fake.calls[0] == _BATCHED[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_calls_compute_the_row_major_product(dtype, rng, monkeypatch):
    """Cublas.gemm's ctypes call, through a libcublas computing with numpy: C = 0.5·A·Bᵀ + 2·C, row-major."""
    fake = _FakeCublasLibrary()
    monkeypatch.setattr(cublas_module, "library", lambda: fake)
    a, b, c = (rng.normal(size=shape).astype(dtype) for shape in ((3, 4), (5, 4), (3, 5)))
    expected = 0.5 * a @ b.T + 2.0 * c
    call = column_major(False, True, 3, 5, 4, a.ctypes.data, 4, b.ctypes.data, 4, c.ctypes.data, 5)
    handle = cublas_module.Cublas()
    handle.gemm(dtype, call, 0.5, 2.0)
    handle.close()
    np.testing.assert_allclose(c, expected, rtol=1e-6)
    assert fake.calls == [_FUNCTIONS[dtype][0]]
    with pytest.raises(CompileError, match="int32 is not supported"):
        cublas_module.Cublas().gemm("int32", call, 1.0, 0.0)
