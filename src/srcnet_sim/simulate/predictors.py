"""The predictor interface and its strategies: which processor predicts the visibilities (BACKEND=auto|cpu|gpu).

A `Predictor` takes the inputs every step shares (`PredictInputs`) and the per-dish UVW of a few time
steps, and returns their visibilities (time, baseline, channel, correlation). Two strategies stand behind
it, registered in PREDICTORS: `CpuStrategy` (numba/BLAS, `predict.predict_time_step`, one step per call,
computed when its result is asked for) and `GpuStrategy` (`predict_gpu`, blocks of steps queued on the
device, so that the device computes one block while the host writes the previous one). A third backend
is one more entry there.

`auto` is resolved here, and only here (`resolve_backend`): it takes the GPU when CuPy imports and sees a CUDA device and the run is long enough to repay the
GPU's start (numba.cuda compiles the per-baseline kernel in every process: 14-19 s measured on an H200
node, against a whole default run of about 3 s on the CPU), else the CPU; `gpu` without a device is a
user error raised before any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.errors import UserInputError
from srcnet_sim.simulate.baseline_kernel import PackingBuffers
from srcnet_sim.simulate.predict import POLARISED_SKY_WITH_TURNING_BEAMS, SourceTerms, predict_time_step
from srcnet_sim.sizing import gpu_steps_per_block

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


def resolve_backend(requested: str, source_visibilities: float | None = None,
                    polarised_sky_with_turning_beams: bool = False) -> Backend:
    """The backend to run for BACKEND=`requested` and a run of `source_visibilities` (sources x baselines x
    channels x time steps; None: assume a long run); UserInputError for `gpu` without a usable device, or for a
    polarised sky seen through beams that turn on it (the CPU's alone: `auto` gives the CPU)."""
    if requested not in BACKENDS:
        raise UserInputError("BACKEND", f"{requested!r} is not a backend; allowed: {', '.join(BACKENDS)}")
    cores = os.cpu_count() or 1
    if polarised_sky_with_turning_beams and requested == "gpu":
        raise UserInputError("BACKEND", POLARISED_SKY_WITH_TURNING_BEAMS)
    if polarised_sky_with_turning_beams:
        return Backend("cpu", f"CPU, {cores} cores (a polarised sky through BEAM=everybeam's turning MeerKAT beams is "
                              "modelled on the CPU)")
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


@dataclass(frozen=True)
class PredictInputs:
    """What every time step of one predictor call shares.

    Attributes:
        terms: per-source inputs of the channels predicted (directions, Stokes, beams, shapes).
        dish_type: (n_dish,) index of each dish into terms.beams.
        freq_hz: (n_chan,) channel centres, Hz.
        ant1, ant2: (n_baseline,) dish indices of each baseline.
        channel_width_hz: bandwidth smearing's channel width, Hz (0: off).
        smear_time: apply time smearing over interval_s (s).
        dtype: complex64 or complex128.
        buffers: the CPU smearing kernel's memory, reused from step to step.
    """

    terms: SourceTerms
    dish_type: np.ndarray
    freq_hz: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    channel_width_hz: float
    smear_time: bool
    interval_s: float
    dtype: type
    buffers: PackingBuffers


class Pending(Protocol):
    """Visibilities on their way: `result()` gives them, (n_time, n_baseline, n_chan, 4) Jy, on the host."""

    def result(self) -> np.ndarray: ...


class Predictor(Protocol):
    """One way to predict visibilities: `name` is its BACKEND value."""

    name: str

    def steps_per_call(self, n_times: int, n_baselines: int, n_channels: int, dtype: type) -> int:
        """Time steps one `submit` takes for an observation of these counts."""
        ...

    def submit(self, inputs: PredictInputs, dish_uvw_m: np.ndarray, dish_uvw_rate_m_s: np.ndarray | None,
               parallactic_rad: np.ndarray | None = None) -> Pending:
        """Start predicting the steps of (n_time, n_dish, 3) per-dish UVW, m (and their d(UVW)/dt, m/s, with time
        smearing, and their (n_time,) parallactic angles, rad, with beams that turn on the sky: inputs.terms.jones);
        the result is (n_time, n_baseline, n_chan, 4) in inputs.dtype, Jy."""
        ...


@dataclass(frozen=True)
class _Deferred:
    """A result computed when it is asked for (the CPU's: memory holds one step at a time)."""

    compute: Callable[[], np.ndarray]

    def result(self) -> np.ndarray:
        return self.compute()


class CpuStrategy:
    """The CPU predictor (numba kernels and BLAS on this process's threads), one time step per call."""

    name = "cpu"

    def steps_per_call(self, n_times: int, n_baselines: int, n_channels: int, dtype: type) -> int:
        return 1

    def submit(self, inputs: PredictInputs, dish_uvw_m: np.ndarray, dish_uvw_rate_m_s: np.ndarray | None,
               parallactic_rad: np.ndarray | None = None) -> Pending:
        def compute() -> np.ndarray:
            steps = [self._step(inputs, dish_uvw_m[i], None if dish_uvw_rate_m_s is None else dish_uvw_rate_m_s[i],
                                None if parallactic_rad is None else float(parallactic_rad[i]))
                     for i in range(len(dish_uvw_m))]
            return steps[0][None] if len(steps) == 1 else np.stack(steps)
        return _Deferred(compute)

    @staticmethod
    def _step(inputs: PredictInputs, dish_uvw_m: np.ndarray, dish_uvw_rate_m_s: np.ndarray | None,
              parallactic_rad: float | None) -> np.ndarray:
        """(n_baseline, n_chan, 4) visibilities of one step from its (n_dish, 3) UVW (and rate, parallactic angle)."""
        delay_rate = None
        if inputs.smear_time:  # (n_dish, n_src) d(tau)/dt of every dish towards every source, s/s
            delay_rate = (dish_uvw_rate_m_s @ inputs.terms.lmn.T) / SPEED_OF_LIGHT_M_S
        return predict_time_step(dish_uvw_m, inputs.terms, inputs.dish_type, inputs.freq_hz, inputs.ant1, inputs.ant2,
                                 channel_width_hz=inputs.channel_width_hz, dish_delay_rate=delay_rate,
                                 interval_s=inputs.interval_s, dtype=inputs.dtype, buffers=inputs.buffers,
                                 parallactic_rad=parallactic_rad)


@dataclass(frozen=True)
class _OnDevice:
    """A block of steps queued on the GPU; `result()` copies it to the host (and waits for it)."""

    device: object  # predict_gpu.GpuPredictor
    visibilities: object  # the device array

    def result(self) -> np.ndarray:
        return self.device.to_host(self.visibilities)


class GpuStrategy:
    """The GPU predictor (`predict_gpu.GpuPredictor`: CuPy on CUDA device 0, or the one given, e.g. NumPy with
    numba's CUDA simulator), blocks of sizing.gpu_steps_per_block steps per call, queued asynchronously."""

    name = "gpu"

    def __init__(self, device=None):
        if device is None:
            import cupy

            from srcnet_sim.simulate.predict_gpu import GpuPredictor

            device = GpuPredictor(cupy)
        self.device = device

    def steps_per_call(self, n_times: int, n_baselines: int, n_channels: int, dtype: type) -> int:
        return gpu_steps_per_block(n_times, n_baselines, n_channels, np.dtype(dtype).itemsize)

    def submit(self, inputs: PredictInputs, dish_uvw_m: np.ndarray, dish_uvw_rate_m_s: np.ndarray | None,
               parallactic_rad: np.ndarray | None = None) -> Pending:
        rate = dish_uvw_rate_m_s if inputs.smear_time else None
        queued = self.device.predict(dish_uvw_m, inputs.terms, inputs.dish_type, inputs.freq_hz, inputs.ant1, inputs.ant2,
                                     channel_width_hz=inputs.channel_width_hz, dish_uvw_rate_m_s=rate,
                                     interval_s=inputs.interval_s, dtype=inputs.dtype, to_host=False,
                                     parallactic_rad=parallactic_rad)
        return _OnDevice(self.device, queued)


PREDICTORS: dict[str, Callable[[], Predictor]] = {"cpu": CpuStrategy, "gpu": GpuStrategy}


def make_predictor(name: str) -> Predictor:
    """The registered predictor of a resolved backend name ("cpu" or "gpu"; see resolve_backend for "auto")."""
    return PREDICTORS[name]()
