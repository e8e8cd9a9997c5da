"""Simulated NVML handles: genuine pynvml pointer types whose value says what they point at.

A handle is a ``c_nvmlDevice_t`` (or ``c_nvmlGpuInstance_t``, ...) whose pointer value encodes
``(kind, gpu, gi, ci)``, so it fits caller-allocated handle arrays and the ``device`` /
``gpuInstance`` fields of info structs exactly as a real one does, and survives a round trip
through C-level calls (``sim exec``).
"""

from __future__ import annotations

import ctypes
from typing import Any

import pynvml

from migctl.sim.catalog import Placement

KIND_GPU, KIND_GI, KIND_CI, KIND_MIG, KIND_SAMPLE = 1, 2, 3, 4, 5
_BASE = 1 << 60


def fail(code: int) -> pynvml.NVMLError:
    """The pynvml error (its subclass for ``code``) the driver would return."""
    return pynvml.NVMLError(code)


def encode(kind: int, gpu: int, gi: int = 0, ci: int = 0) -> int:
    return _BASE | (kind << 52) | (gpu << 40) | (gi << 20) | ci


def decode(handle: Any) -> tuple[int, int, int, int]:
    """``(kind, gpu, gi, ci)`` of a handle; INVALID_ARGUMENT for anything else."""
    try:
        value = ctypes.cast(handle, ctypes.c_void_p).value
    except (ctypes.ArgumentError, TypeError):
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT) from None
    if not value or value & _BASE == 0:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return (value >> 52) & 0xFF, (value >> 40) & 0xFFF, (value >> 20) & 0xFFFFF, value & 0xFFFFF


def make(ptr_type: Any, kind: int, gpu: int, gi: int = 0, ci: int = 0) -> Any:
    return ctypes.cast(ctypes.c_void_p(encode(kind, gpu, gi, ci)), ptr_type)


def device(gpu: int) -> Any:
    return make(pynvml.c_nvmlDevice_t, KIND_GPU, gpu)


def gpu_instance(gpu: int, gi: int) -> Any:
    return make(pynvml.c_nvmlGpuInstance_t, KIND_GI, gpu, gi)


def compute_instance(gpu: int, gi: int, ci: int) -> Any:
    return make(pynvml.c_nvmlComputeInstance_t, KIND_CI, gpu, gi, ci)


def mig_device(gpu: int, gi: int, ci: int) -> Any:
    return make(pynvml.c_nvmlDevice_t, KIND_MIG, gpu, gi, ci)


def target(ref: Any) -> Any:
    """What a ``byref(x)``/``pointer(x)`` argument points to (or ``x`` itself for arrays)."""
    if ref is None:
        return None
    obj = getattr(ref, "_obj", None)  # ctypes.byref() result
    if obj is not None:
        return obj
    if isinstance(ref, ctypes._Pointer):
        return ref.contents
    return ref


def placement_arg(ref: Any, struct_type: Any) -> Placement:
    """The placement a ``...WithPlacement`` call passed by reference (a bare struct is refused)."""
    obj = getattr(ref, "_obj", None)
    if obj is None and isinstance(ref, ctypes._Pointer):
        obj = ref.contents
    if not isinstance(obj, struct_type):
        # The C API takes a pointer; pynvml forwards the argument unchanged, so a struct
        # passed by value reaches the driver as garbage. Refuse it loudly here.
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return Placement(int(obj.start), int(obj.size))


def fill_array(found: list[Any], arrayRef: Any, countRef: Any) -> int:
    """NVML's caller-allocated array protocol: INSUFFICIENT_SIZE (with the count) when short."""
    count = target(countRef)
    array = target(arrayRef)
    if count is None or array is None:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    if len(array) < len(found):
        count.value = len(found)
        raise fail(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
    for i, item in enumerate(found):
        array[i] = item
    count.value = len(found)
    return pynvml.NVML_SUCCESS
