"""Which processor predicts the visibilities: BACKEND=auto|cpu|gpu.

`auto` takes the GPU when CuPy imports and sees a CUDA device and the run is long enough to repay the
GPU's start (numba.cuda compiles the per-baseline kernel in every process: 14-19 s measured on an H200
node, against a whole default run of about 3 s on the CPU), else the CPU; `gpu` without a device is a
user error raised before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from srcnet_sim.errors import UserInputError

BACKENDS = ("auto", "cpu", "gpu")
GPU_START_S = 15.0  # the GPU kernel's compilation, once per process (H200 node, numba-cuda 0.30)
# CPU predictor throughput per core, source-visibilities (sources x baselines x channels x time steps) per
# second, with bandwidth smearing and 10 % Gaussian sources (AMD EPYC Zen 4: 3.1e9; taken a little lower).
CPU_SOURCE_VISIBILITIES_PER_CORE_S = 2.5e9


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


def cpu_seconds(source_visibilities: float, cores: int) -> float:
    """About how long the CPU predictor takes for `source_visibilities` on `cores` cores, s."""
    return source_visibilities / (CPU_SOURCE_VISIBILITIES_PER_CORE_S * max(1, cores))


def resolve_backend(requested: str, source_visibilities: float | None = None) -> Backend:
    """The backend to run for BACKEND=`requested` and a run of `source_visibilities` (sources x baselines x
    channels x time steps; None: assume a long run); UserInputError for `gpu` without a usable device."""
    if requested not in BACKENDS:
        raise UserInputError("BACKEND", f"{requested!r} is not a backend; allowed: {', '.join(BACKENDS)}")
    cores = os.cpu_count() or 1
    device = None if requested == "cpu" else gpu_device_name()
    if device is not None and requested == "auto" and source_visibilities is not None:
        on_cpu = cpu_seconds(source_visibilities, cores)
        if on_cpu < GPU_START_S:
            return Backend("cpu", f"CPU, {cores} cores; GPU 0 ({device}) not used: this run takes about {on_cpu:.0f} s "
                                  f"on the CPU, less than the GPU kernel's compilation (~{GPU_START_S:.0f} s); "
                                  "BACKEND=gpu to use it anyway")
    if device is not None:
        return Backend("gpu", f"GPU 0: {device}")
    if requested == "gpu":
        raise UserInputError("BACKEND", "gpu was asked for but no CUDA device is usable here "
                             "(needs CuPy, `pip install srcnet-sim[gpu]`, an NVIDIA driver and a GPU); "
                             "use BACKEND=auto or cpu")
    return Backend("cpu", f"CPU, {cores} cores")
