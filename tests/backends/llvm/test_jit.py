"""The LLVM JIT layer: host target, O3 with vectorization, object code that loads (again, elsewhere), symbols."""

import ctypes
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from graphc.backends.llvm import jit
from graphc.errors import CompileError, NotFoundError

DOUBLE_OF_DOUBLE = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)

SCALE = """
define double @scale(double %x, double %y) {
  %p = fmul double %x, %y
  %s = fadd double %p, 1.0
  ret double %s
}
"""

CALLS_EXTERNAL = """
declare double @graphc_test_external(double)
define double @twice_external(double %x) {
  %r = call double @graphc_test_external(double %x)
  %s = fmul double %r, 2.0
  ret double %s
}
"""


def loop(body: str, init: str = "") -> str:
    """``void @f(ptr x, ptr y, i64 n)`` running ``body`` for i in [0, n) (x[i] loaded as %v)."""
    return f"""
define void @f(ptr noalias %x, ptr noalias %y, i64 %n) {{
entry:
  {init}
  %go = icmp sgt i64 %n, 0
  br i1 %go, label %loop, label %done
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %px = getelementptr inbounds double, ptr %x, i64 %i
  %v = load double, ptr %px
  {body}
  %next = add i64 %i, 1
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}}
"""


def reduction(flags: str) -> str:
    """``double @f(ptr x, i64 n)``: the sum of x, accumulated with fadd ``flags``."""
    return f"""
define double @f(ptr noalias %x, i64 %n) {{
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %acc = phi double [0.0, %entry], [%sum, %loop]
  %px = getelementptr inbounds double, ptr %x, i64 %i
  %v = load double, ptr %px
  %sum = fadd {flags} double %acc, %v
  %next = add i64 %i, 1
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret double %sum
}}
"""


def vector_types(llvm_ir: str) -> set[str]:
    return set(re.findall(r"<\d+ x double>", llvm_ir))


def test_compiled_object_loads_and_runs():
    target = jit.host_target()
    compiled = jit.compile_object(SCALE, target)
    assert compiled.object_code[:4] == b"\x7fELF" or sys.platform != "linux"
    assert set(compiled.timings) == {"LLVM parse", "LLVM optimize", "machine code"}
    assert all(seconds >= 0 for seconds in compiled.timings.values())
    assert "LLVM optimize" in str(compiled) and " ms" in str(compiled)
    assert "define double @scale" in compiled.optimized_ir
    loaded = jit.load_object(compiled.object_code, target)
    scale = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)(loaded.address("scale"))
    assert scale(3.0, 4.0) == 13.0


def test_object_code_loads_twice_as_from_a_disk_cache():
    target = jit.host_target()
    code = jit.compile_object(SCALE, target).object_code
    first, second = jit.load_object(code, target), jit.load_object(bytes(code), target)
    signature = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)
    assert first.address("scale") != second.address("scale")
    assert signature(first.address("scale"))(2.0, 2.0) == 5.0
    del first
    assert signature(second.address("scale"))(2.0, 3.0) == 7.0


def test_object_code_loads_in_another_process(tmp_path):
    path = tmp_path / "scale.o"
    path.write_bytes(jit.compile_object(SCALE, jit.host_target()).object_code)
    script = textwrap.dedent(f"""
        import ctypes
        from graphc.backends.llvm import jit
        loaded = jit.load_object(open({str(path)!r}, "rb").read(), jit.host_target())
        signature = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)
        print(signature(loaded.address("scale"))(5.0, 6.0))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "31.0"


def test_external_symbol_given_by_address_resolves():
    target = jit.host_target()
    code = jit.compile_object(CALLS_EXTERNAL, target).object_code
    callback = DOUBLE_OF_DOUBLE(lambda x: x + 0.5)
    address = ctypes.cast(callback, ctypes.c_void_p).value
    loaded = jit.load_object(code, target, symbols={"graphc_test_external": address})
    assert DOUBLE_OF_DOUBLE(loaded.address("twice_external"))(1.0) == 3.0


def test_unresolved_symbol_is_a_compile_error_not_a_crash():
    target = jit.host_target()
    code = jit.compile_object(CALLS_EXTERNAL.replace("graphc_test_external", "graphc_test_missing"), target)
    with pytest.raises(CompileError, match="graphc_test_missing"):
        jit.load_object(code.object_code, target)


def test_libm_resolves_from_the_process():
    target = jit.host_target()
    ir = "declare double @cbrt(double)\ndefine double @f(double %x) {\n  %r = call double @cbrt(double %x)\n" \
         "  ret double %r\n}\n"
    loaded = jit.load_object(jit.compile_object(ir, target).object_code, target)
    assert DOUBLE_OF_DOUBLE(loaded.address("f"))(27.0) == pytest.approx(3.0, rel=1e-15)


def test_library_that_cannot_load_is_a_compile_error():
    target = jit.host_target()
    code = jit.compile_object(SCALE, target).object_code
    with pytest.raises(CompileError, match="no-such-library"):
        jit.load_object(code, target, libraries=["/nonexistent/libno-such-library.so"])


def test_unknown_function_name_is_not_found():
    target = jit.host_target()
    loaded = jit.load_object(jit.compile_object(SCALE, target).object_code, target)
    with pytest.raises(NotFoundError, match="nothing_here"):
        loaded.address("nothing_here")


def test_target_description_names_everything_the_code_depends_on():
    import llvmlite
    import llvmlite.binding as llvm

    target = jit.host_target()
    assert jit.host_target() is target
    assert target.cpu == llvm.get_host_cpu_name() and target.cpu in target.description
    assert target.features == llvm.get_host_cpu_features().flatten() and target.features in target.description
    assert target.triple in target.description
    assert f"llvmlite={llvmlite.__version__}" in target.description
    assert "llvm=" + ".".join(map(str, llvm.llvm_version_info)) in target.description
    assert "graphc=" in target.description and "opt=3" in target.description


@pytest.mark.parametrize("ir, message", [
    ("define i32 @f() {\n  ret i64 0\n}\n", "<string>:2"),
    ("define i32 @f() {\n  %x = add i32 %y, 1\n  ret i32 %x\n}\n", "undefined value '%y'"),
    ("define i32 @f(i32 %a) {\n  %x = add i32 %z, 1\n  %z = add i32 %a, 1\n  ret i32 %x\n}\n", "dominate"),
], ids=["type", "undefined", "verifier"])
def test_bad_ir_is_a_compile_error_with_llvms_message(ir, message):
    with pytest.raises(CompileError, match="LLVM rejected the generated IR") as info:
        jit.compile_object(ir, jit.host_target())
    assert message in str(info.value)


def test_elementwise_loop_vectorizes_without_fast_math():
    body = "%w = fmul double %v, 3.0\n  %py = getelementptr inbounds double, ptr %y, i64 %i\n  store double %w, ptr %py"
    compiled = jit.compile_object(loop(body), jit.host_target())
    assert vector_types(compiled.optimized_ir)
    loaded = jit.load_object(compiled.object_code, jit.host_target())
    x, y = np.arange(1000.0), np.zeros(1000)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(loaded.address("f"))(
        x.ctypes.data, y.ctypes.data, x.size)
    np.testing.assert_array_equal(y, 3 * x)


def test_float_reduction_vectorizes_only_when_reassociation_is_allowed():
    strict = jit.compile_object(reduction(""), jit.host_target())
    assert not vector_types(strict.optimized_ir)  # in-order sum: IEEE semantics kept
    relaxed = jit.compile_object(reduction("reassoc nsz contract"), jit.host_target())
    assert vector_types(relaxed.optimized_ir)
    loaded = jit.load_object(relaxed.object_code, jit.host_target())
    x = np.arange(1001.0)
    total = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)(loaded.address("f"))
    assert total(x.ctypes.data, x.size) == x.sum()
