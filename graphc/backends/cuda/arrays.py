"""GPU arrays at the Session's boundary: feeds that are already in GPU memory, and fetches left there.

A feed value with ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors, Numba, JAX GPU arrays, graphc's own
``DeviceArray``) is checked here — the placeholder's dtype exactly (nothing converts on the device: cast it
first), its shape, C-contiguous, no mask — and wrapped in a ``DeviceArray`` that keeps the producer's object
alive; the cuda backend's kernels read it where it is, with no copy. ``sess.run(..., on_device=True)`` returns
``DeviceArray``s: each run's kernel outputs in fresh memory from the backend's pool, the user's to keep.
``to_device(array)`` puts a host array there (``gc.to_device``).

The backend issues all its work on the legacy default stream, which waits for the work already queued on the
blocking streams (CuPy's and PyTorch's default ones); a producer writing on a non-blocking stream must
synchronize it before the run. A CPU backend fed a ``DeviceArray`` copies it to the host (``np.asarray``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import DTypeError, FeedError


class DeviceArray:
    """A C-contiguous array in GPU memory: ``shape``, ``dtype``, ``address``; ``get()`` (or ``np.asarray``)
    copies it to the host, and ``__cuda_array_interface__`` hands it to CuPy or PyTorch without a copy."""

    def __init__(self, address: int, shape: tuple[int, ...], dtype: np.dtype | str, owner: Any = None) -> None:
        self.address = address
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._owner = owner  # the allocation, or the producer's array: what keeps the memory alive

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        # stream 1: the legacy default stream, where the cuda backend wrote it
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.address, False), "strides": None,
                "version": 3, "stream": 1 if self.size else None}

    def get(self) -> np.ndarray:
        """A host copy (waits for the GPU work writing it)."""
        from graphc.backends.cuda.executable import gpu

        array = np.empty(self.shape, self.dtype)
        if array.nbytes:
            gpu().driver.memcpy_dtoh(array, self.address)
        return array

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.get()
        return array if dtype is None else array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, address={self.address:#x})"


def to_device(array: Any) -> DeviceArray:
    """A copy of ``array`` (anything numpy converts) in GPU memory, from the cuda backend's pool: feed it to
    run after run with no copy per run (as ``jax.device_put``). BackendUnavailableError without a GPU."""
    from graphc.backends.compiled import contiguous
    from graphc.backends.cuda.executable import gpu

    host, device = contiguous(array), gpu()
    memory = device.allocate(host.nbytes)
    if host.nbytes:
        device.driver.memcpy_htod(memory, host)
    return DeviceArray(int(memory), host.shape, host.dtype, owner=memory)


def device_feed(value: Any, dtype: np.dtype, where: Callable[[], str]) -> DeviceArray:
    """``value`` (an object with ``__cuda_array_interface__``) as a feed of ``dtype`` (its shape is the caller's
    to check); FeedError/DTypeError naming the placeholder (``where()``) for one the kernels cannot read in
    place."""
    if isinstance(value, DeviceArray) and value.dtype == dtype:
        return value  # C-contiguous, unmasked: as it is
    interface = value.__cuda_array_interface__
    try:
        shape = tuple(int(n) for n in interface["shape"])
        typestr = interface["typestr"]
        if not isinstance(typestr, str):  # np.dtype(None) would be float64
            raise TypeError(f"typestr {typestr!r} is not a string")
        source = np.dtype(typestr)
        address = int(interface["data"][0] or 0)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise FeedError(f"{where()} was fed a GPU array whose __cuda_array_interface__ is malformed ({error})") \
            from None
    if interface.get("mask") is not None:
        raise FeedError(f"{where()} was fed a masked GPU array; fill the masked values first")
    if source != dtype:
        raise DTypeError(f"{where()} was fed a GPU array of dtype {source}; GPU feeds are not converted: cast it "
                         f"to {dtype} first")
    strides = interface.get("strides")
    if strides is not None and any(n > 1 and int(s) != c for n, s, c in zip(shape, strides, _c_strides(shape, dtype))):
        raise FeedError(f"{where()} was fed a GPU array with strides {tuple(strides)}: GPU feeds must be "
                        "C-contiguous (e.g. .contiguous() in PyTorch, cupy.ascontiguousarray)")
    if address == 0 and int(np.prod(shape, dtype=np.int64)):
        raise FeedError(f"{where()} was fed a GPU array with a null data pointer")
    return DeviceArray(address, shape, dtype, owner=value)


def _c_strides(shape: tuple[int, ...], dtype: np.dtype) -> list[int]:
    strides, step = [], dtype.itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return strides[::-1]
