"""LLVM IR to machine code for the host CPU, and machine code into this process.

Compiling and loading are separate steps so the object code can be cached on disk and loaded again in another
process: ``compile_object`` returns the bytes (with the optimized IR, for ``sess.compiled(...).llvm_ir``, and
the time each stage took), ``load_object`` maps them into an MCJIT engine and resolves their external symbols.

Code is built for the exact host CPU and its full feature set, so ``Target.description`` names all of it: a
cache keyed by it never hands AVX-512 code to a CPU without AVX-512.

Float reductions vectorize only where the renderer allows reassociation on the accumulating instructions
(``fadd reassoc``); no fast-math is enabled here, so every other float operation keeps IEEE semantics, and
elementwise loops vectorize without it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import llvmlite
import llvmlite.binding as llvm

from graphc.errors import CompileError, NotFoundError

OPT_LEVEL = 3
# Large code model and absolute relocations: RuntimeDyld patches every address when it loads the object, so
# the same bytes load anywhere in any process, and calls reach libraries however far away they are mapped.
_RELOC, _CODE_MODEL = "default", "jitdefault"
_lock = threading.RLock()  # LLVM's code generator and the process-wide symbol table are not for concurrent use


@functools.cache
def initialize() -> None:
    """Register the host target and its assembly printer with LLVM (once per process).

    llvmlite 0.50 initializes LLVM's core by itself (``llvm.initialize()`` now raises); targets still need this.
    """
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    """The host CPU as LLVM sees it, and the target machine that builds code for it."""

    triple: str
    cpu: str
    features: str
    description: str  # everything the machine code depends on: part of every compile-cache key
    machine: llvm.TargetMachine = field(compare=False, repr=False)  # optimizes and emits code

    def new_machine(self) -> llvm.TargetMachine:
        """Another target machine like ``machine`` (an execution engine takes ownership of the one it gets)."""
        return _machine(self.triple, self.cpu, self.features)


def _machine(triple: str, cpu: str, features: str) -> llvm.TargetMachine:
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=OPT_LEVEL, reloc=_RELOC, codemodel=_CODE_MODEL, jit=True)


@functools.cache
def host_target() -> Target:
    """This process's CPU: triple, CPU name and every feature flag it has."""
    initialize()
    triple, cpu = llvm.get_process_triple(), llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features().flatten()
    try:
        version = importlib.metadata.version("graphc")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    llvm_version = ".".join(map(str, llvm.llvm_version_info))
    description = (f"{triple} cpu={cpu} features={features} opt={OPT_LEVEL} graphc={version} "
                   f"llvmlite={llvmlite.__version__} llvm={llvm_version}")
    return Target(triple, cpu, features, description, _machine(triple, cpu, features))


def optimize(module: llvm.ModuleRef, target: Target) -> None:
    """Run LLVM's O3 pipeline on ``module`` in place, tuned for ``target``, loop and SLP vectorizers on."""
    tuning = llvm.create_pipeline_tuning_options(speed_level=OPT_LEVEL)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    tuning.loop_interleaving = True
    tuning.loop_unrolling = True
    with _lock:
        builder = llvm.create_pass_builder(target.machine, tuning)
        builder.getModulePassManager().run(module, builder)


@dataclass(frozen=True)
class CompiledObject:
    """Object code for the target, the optimized IR it was built from, and the seconds each stage took."""

    object_code: bytes
    optimized_ir: str
    timings: dict[str, float]  # stage name ("LLVM parse", "LLVM optimize", "machine code") -> seconds

    def __str__(self) -> str:
        return ", ".join(f"{stage} {seconds * 1e3:.1f} ms" for stage, seconds in self.timings.items())


def compile_object(llvm_ir: str, target: Target) -> CompiledObject:
    """Parse and verify ``llvm_ir`` (a module without triple or data layout), optimize it and emit object code.

    Raises ``CompileError`` with LLVM's message (which quotes the offending line) when the IR is malformed.
    """
    initialize()
    with _lock:
        started = time.perf_counter()
        module = _parse(llvm_ir)
        module.triple = target.triple
        module.data_layout = str(target.machine.target_data)
        parsed = time.perf_counter()
        optimize(module, target)
        optimized = time.perf_counter()
        object_code = target.machine.emit_object(module)
        done = time.perf_counter()
    timings = {"LLVM parse": parsed - started, "LLVM optimize": optimized - parsed, "machine code": done - optimized}
    return CompiledObject(bytes(object_code), str(module), timings)


def _parse(llvm_ir: str) -> llvm.ModuleRef:
    try:
        module = llvm.parse_assembly(llvm_ir)
        module.verify()
    except RuntimeError as error:
        raise CompileError(f"LLVM rejected the generated IR: {str(error).strip()}") from None
    return module


class Loaded:
    """Machine code mapped into this process: its functions stay callable as long as this object lives."""

    def __init__(self, engine: llvm.ExecutionEngine, object_code: bytes, load_seconds: float) -> None:
        self._engine = engine
        self._object_code = object_code  # the engine may refer to the buffer it loaded from
        self.load_seconds = load_seconds

    def address(self, name: str) -> int:
        """The address of the function or global ``name`` defined by the object code."""
        address = self._engine.get_function_address(name)
        if not address:
            raise NotFoundError(f"the loaded object code defines no symbol {name!r}")
        return address


@functools.cache
def _load_library(path: str) -> None:
    try:
        llvm.load_library_permanently(path)
    except RuntimeError as error:
        raise CompileError(f"cannot load the shared library {path}: {error}") from None


def load_object(object_code: bytes, target: Target, symbols: Mapping[str, int] | None = None,
                libraries: Iterable[str] = ()) -> Loaded:
    """Load ``object_code`` (from ``compile_object`` for ``target``, maybe in another process) into this process.

    External symbols resolve against the process (libc, libm, and whatever Python has loaded), the shared
    ``libraries`` (paths; loaded once, for good) and ``symbols`` (name -> address, e.g. a BLAS function found
    with ctypes; registered process-wide, so a name means one address at a time). A symbol that resolves
    nowhere raises ``CompileError`` instead of leaving a call that would crash.
    """
    initialize()
    started = time.perf_counter()
    object_code = bytes(object_code)
    for path in libraries:
        _load_library(path)
    with _lock:
        for name, address in (symbols or {}).items():
            llvm.add_symbol(name, address)
        missing = sorted(name for name in _undefined_symbols(object_code) if not llvm.address_of_symbol(name))
        if missing:
            raise CompileError(f"the object code calls symbols found nowhere in this process: {', '.join(missing)}"
                               " (load the library that defines them, or pass their addresses as symbols)")
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target.new_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        engine.finalize_object()
    return Loaded(engine, object_code, time.perf_counter() - started)


def _undefined_symbols(object_code: bytes) -> list[str]:
    """The names an ELF64 little-endian object needs from elsewhere (strong undefined symbols); other formats
    are not inspected, and LLVM resolves their symbols unchecked."""
    if object_code[:6] != b"\x7fELF\x02\x01":
        return []
    section_offset, = struct.unpack_from("<Q", object_code, 0x28)
    entry_size, count = struct.unpack_from("<HH", object_code, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", object_code, section_offset + i * entry_size) for i in range(count)]
    names = []
    for _, kind, _, _, offset, size, link, _, _, symbol_size in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strings = sections[link][4]
        for at in range(offset + symbol_size, offset + size, symbol_size):  # entry 0 is the null symbol
            name_at, info, _, section_index = struct.unpack_from("<IBBH", object_code, at)
            if section_index == 0 and info >> 4 == 1 and name_at:  # SHN_UNDEF, STB_GLOBAL
                end = object_code.index(b"\0", strings + name_at)
                names.append(object_code[strings + name_at:end].decode())
    return names
