"""Which processor predicts the visibilities: BACKEND=auto|cpu|gpu.

`auto` takes the GPU when CuPy imports and sees a CUDA device, else the CPU; `gpu` without a device is
a user error raised before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from srcnet_sim.errors import UserInputError

BACKENDS = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    """The chosen backend: name "cpu" or "gpu", and a description of the device for the log."""

    name: str
    device: str


def gpu_device_name() -> str | None:
    """Name of CUDA device 0 as CuPy sees it, or None without CuPy, a driver or a device."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    except Exception:  # no driver, no device, or a driver too old for this CuPy: all mean "no usable GPU"
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def resolve_backend(requested: str) -> Backend:
    """The backend to run for BACKEND=`requested`; UserInputError for `gpu` without a usable device."""
    if requested not in BACKENDS:
        raise UserInputError("BACKEND", f"{requested!r} is not a backend; allowed: {', '.join(BACKENDS)}")
    device = None if requested == "cpu" else gpu_device_name()
    if device is not None:
        return Backend("gpu", f"GPU 0: {device}")
    if requested == "gpu":
        raise UserInputError("BACKEND", "gpu was asked for but no CUDA device is usable here "
                             "(needs CuPy, `pip install srcnet-sim[gpu]`, an NVIDIA driver and a GPU); "
                             "use BACKEND=auto or cpu")
    return Backend("cpu", f"CPU, {os.cpu_count()} cores")
