"""The observation being simulated: telescope, sky, sample times, channels, and their per-step geometry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.baseline_kernel import PackingBuffers
from srcnet_sim.simulate.beams import dish_beams, dish_types
from srcnet_sim.simulate.noise import add_noise, baseline_sigma_jy, sefd_jy
from srcnet_sim.simulate.predict import SourceTerms, baseline_pairs, predict_time_step
from srcnet_sim.sky import SkyModel
from srcnet_sim.telescope import Telescope

if TYPE_CHECKING:
    from srcnet_sim.simulate.predict_gpu import GpuPredictor

RATE_STEP_S = 1.0  # half-step of the central difference giving d(uvw)/dt


@dataclass(frozen=True)
class Observation:
    """One observation, all in SI units.

    Attributes:
        telescope, sky: what observes and what is observed.
        ra_rad, dec_rad: J2000 phase centre (and pointing centre of every dish).
        times_s: (n_time,) sample centres, MJD seconds UTC; interval_s their spacing.
        freq_hz: (n_chan,) channel centres; channel_width_hz their width.
        beam: beam model name; autocorrelations: write (p, p) baselines too.
        smearing: "off", "bandwidth" or "bandwidth+time"; noise: add thermal noise; seed: noise seed.
        dtype: complex64 or complex128.
        dish_uvw_m, dish_uvw_rate_m_s: (n_time, n_dish, 3) per-dish UVW (m) and d(UVW)/dt (m/s, time smearing
            only) of every time step, or None until `with_geometry` computes them.
    """

    telescope: Telescope
    sky: SkyModel
    ra_rad: float
    dec_rad: float
    times_s: np.ndarray
    interval_s: float
    freq_hz: np.ndarray
    channel_width_hz: float
    beam: str = "gaussian"
    autocorrelations: bool = False
    smearing: str = "bandwidth"
    noise: bool = False
    seed: int = 0
    dtype: type = np.complex64
    dish_uvw_m: np.ndarray | None = None
    dish_uvw_rate_m_s: np.ndarray | None = None

    def with_geometry(self) -> "Observation":
        """This observation with the per-dish UVW of every time step computed now, in time order (and their rates
        for time smearing): (n_time, n_dish, 3) arrays that travel with it.

        casacore's measures keep process-wide caches (nutation, IERS look-ups) that make a conversion depend,
        in its last micrometres, on the epochs converted before; computing all time steps once, in order,
        makes the UVW of a time step the same whatever block or worker uses it.
        """
        times = self.times_s
        rate = None
        if self.smearing == "bandwidth+time":
            rate = (self.dish_uvw(times + RATE_STEP_S) - self.dish_uvw(times - RATE_STEP_S)) / (2 * RATE_STEP_S)
        return replace(self, dish_uvw_m=self.dish_uvw(times), dish_uvw_rate_m_s=rate)
    @property
    def baselines(self) -> tuple[np.ndarray, np.ndarray]:
        return baseline_pairs(self.telescope.n_dish, self.autocorrelations)

    def source_terms(self, channels: slice = slice(None)) -> SourceTerms:
        """Per-source inputs of the predictor (directions, fluxes per channel, beams, shapes) for `channels`."""
        freq_hz = self.freq_hz[channels]
        sky, lmn, offset, gaussian = self._sky_terms
        beams, _ = dish_beams(self.beam, offset, freq_hz, self.telescope.diameters_m)
        return SourceTerms(lmn=lmn, stokes=sky.stokes_at(freq_hz), beams=beams, gaussian=gaussian,
                           n_point=int(np.count_nonzero(~sky.is_gaussian)))

    @cached_property
    def _sky_terms(self) -> tuple[SkyModel, np.ndarray, np.ndarray, np.ndarray]:
        """What the source terms of every block share, computed once per observation (a run's blocks all use the
        same one): the sky with its Gaussians last, its (n_src, 3) direction cosines (l, m, n - 1), (n_src,)
        distances from the phase centre (rad) and (n_src, 4) Gaussian shapes [major^2, minor^2, sin pa, cos pa]."""
        sky = self.sky.select(np.argsort(self.sky.is_gaussian, kind="stable"))
        lmn = geometry.direction_cosines(sky.ra_rad, sky.dec_rad, self.ra_rad, self.dec_rad)
        offset = sky.angular_distance_rad(self.ra_rad, self.dec_rad)
        gaussian = np.zeros((len(sky), 4))
        resolved = sky.is_gaussian
        gaussian[resolved, 0] = sky.major_fwhm_rad[resolved] ** 2
        gaussian[resolved, 1] = sky.minor_fwhm_rad[resolved] ** 2
        gaussian[resolved, 2] = np.sin(sky.position_angle_rad[resolved])
        gaussian[resolved, 3] = np.cos(sky.position_angle_rad[resolved])
        return sky, lmn, offset, gaussian

    def dish_uvw(self, times_s: np.ndarray) -> np.ndarray:
        """(n_time, n_dish, 3) per-dish UVW at the given times, metres."""
        return geometry.dish_uvw(self.telescope.itrf_m, times_s, self.ra_rad, self.dec_rad)

    def baseline_sigma(self) -> np.ndarray:
        """(n_bl,) noise rms of one real component, Jy (radiometer equation)."""
        ant1, ant2 = self.baselines
        return baseline_sigma_jy(sefd_jy(self.telescope.diameters_m), ant1, ant2, self.channel_width_hz, self.interval_s)


@dataclass(frozen=True)
class TimeStep:
    """One simulated time step: uvw (n_bl, 3) m, vis (n_bl, n_chan, 4) Jy."""

    index: int
    time_s: float
    uvw_m: np.ndarray
    vis: np.ndarray


def simulate(obs: Observation, time_indices: range | None = None, channels: slice = slice(None), backend: str = "cpu",
             gpu_predictor: GpuPredictor | None = None) -> Iterator[TimeStep]:
    """Yield the visibilities of each time step in turn (of the channels `channels`, a slice with step 1);
    memory holds one step (GPU: one small block of steps).

    backend: "cpu" (numba/BLAS, one step at a time) or "gpu" (`predict_gpu`, blocks of steps on the device).
    gpu_predictor: the `predict_gpu.GpuPredictor` to use (default: one on CuPy's current device).
    """
    if obs.dish_uvw_m is None:
        obs = obs.with_geometry()
    if backend == "gpu":
        yield from _simulate_gpu(obs, time_indices, gpu_predictor, channels)
        return
    run = _StepInputs.of(obs, channels)
    indices = range(len(obs.times_s)) if time_indices is None else time_indices
    times = obs.times_s[list(indices)]
    uvw_all = obs.dish_uvw_m[list(indices)]
    if run.smear_time:
        rate_all = obs.dish_uvw_rate_m_s[list(indices)]
    for i, t_index in enumerate(indices):
        dish_uvw = uvw_all[i]
        delay_rate = run.delay_rate(rate_all[i]) if run.smear_time else None
        vis = predict_time_step(dish_uvw, run.terms, run.dish_type, run.freq_hz, run.ant1, run.ant2,
                                channel_width_hz=run.width_hz, dish_delay_rate=delay_rate, interval_s=obs.interval_s,
                                dtype=obs.dtype, buffers=run.buffers)
        yield run.step(obs, t_index, float(times[i]), dish_uvw, vis)


@dataclass(frozen=True)
class _StepInputs:
    """What every time step of a `simulate` call shares: baselines, dish types, source terms of its channels,
    noise and smearing choices."""

    ant1: np.ndarray
    ant2: np.ndarray
    dish_type: np.ndarray
    terms: SourceTerms
    freq_hz: np.ndarray
    first_channel: int
    sigma: np.ndarray
    width_hz: float  # channel width applied as bandwidth smearing, 0 when off
    smear_time: bool
    buffers: PackingBuffers  # the smearing kernel's memory, reused by the steps

    @classmethod
    def of(cls, obs: Observation, channels: slice) -> "_StepInputs":
        ant1, ant2 = obs.baselines
        _, dish_type = dish_types(obs.beam, obs.telescope.diameters_m)
        return cls(ant1=ant1, ant2=ant2, dish_type=dish_type, terms=obs.source_terms(channels),
                   freq_hz=obs.freq_hz[channels], first_channel=channels.indices(len(obs.freq_hz))[0],
                   sigma=obs.baseline_sigma(), width_hz=obs.channel_width_hz if obs.smearing != "off" else 0.0,
                   smear_time=obs.smearing == "bandwidth+time", buffers=PackingBuffers())

    def delay_rate(self, dish_uvw_rate_m_s: np.ndarray) -> np.ndarray:
        """(n_dish, n_src) d(tau)/dt of every dish towards every source, s/s, from the dishes' (n_dish, 3) d(UVW)/dt,
        m/s (the time-smearing kernel's dish_delay_rate)."""
        return (dish_uvw_rate_m_s @ self.terms.lmn.T) / SPEED_OF_LIGHT_M_S

    def step(self, obs: Observation, t_index: int, time_s: float, dish_uvw: np.ndarray, vis: np.ndarray) -> TimeStep:
        """The TimeStep of predicted `vis` (n_bl, n_chan, 4), noise added in place when the observation has it."""
        if obs.noise:
            add_noise(vis, self.sigma, obs.seed, t_index, self.ant1 == self.ant2, self.first_channel)
        return TimeStep(index=t_index, time_s=time_s, uvw_m=dish_uvw[self.ant1] - dish_uvw[self.ant2], vis=vis)


GPU_BLOCK_BYTES = 256 << 20  # host memory for one block of GPU-predicted steps
GPU_MAX_STEPS_PER_BLOCK = 16


def gpu_steps_per_block(obs: Observation) -> int:
    """Time steps the GPU predicts at once: up to 16, while their visibilities fit GPU_BLOCK_BYTES on the host."""
    step_bytes = len(obs.baselines[0]) * len(obs.freq_hz) * 4 * np.dtype(obs.dtype).itemsize
    return int(max(1, min(GPU_MAX_STEPS_PER_BLOCK, len(obs.times_s), GPU_BLOCK_BYTES // step_bytes)))


def gpu_block_device_bytes(obs: Observation) -> tuple[int, int]:
    """(steps per block, device memory the GPU predictor needs for one block with all sources at once, bytes).

    With less free device memory it processes the sources (and channels) in chunks instead.
    """
    from srcnet_sim.simulate.predict_gpu import block_device_bytes

    steps = gpu_steps_per_block(obs)
    return steps, block_device_bytes(steps, obs.telescope.n_dish, len(obs.freq_hz), len(obs.sky),
                                     len(obs.baselines[0]), obs.dtype)


def _simulate_gpu(obs: Observation, time_indices: range | None, predictor: GpuPredictor | None,
                  channels: slice = slice(None)) -> Iterator[TimeStep]:
    """`simulate` on the GPU: blocks of steps (bounded by GPU_BLOCK_BYTES) predicted together, one block ahead:
    the device computes block n + 1 while the steps of block n are yielded (and written)."""
    if predictor is None:
        import cupy

        from srcnet_sim.simulate.predict_gpu import GpuPredictor

        predictor = GpuPredictor(cupy)
    run = _StepInputs.of(obs, channels)
    indices = list(range(len(obs.times_s)) if time_indices is None else time_indices)
    per_block = gpu_steps_per_block(obs)

    def steps_of(block: list[int], times: np.ndarray, dish_uvw: np.ndarray, vis: np.ndarray) -> Iterator[TimeStep]:
        for i, t_index in enumerate(block):
            yield run.step(obs, t_index, float(times[i]), dish_uvw[i], np.ascontiguousarray(vis[i]))

    ready = None  # the previous block, on the host
    for start in range(0, len(indices), per_block):
        block = indices[start:start + per_block]
        times = obs.times_s[block]
        dish_uvw = obs.dish_uvw_m[block]
        rate = obs.dish_uvw_rate_m_s[block] if run.smear_time else None
        on_device = predictor.predict(dish_uvw, run.terms, run.dish_type, run.freq_hz, run.ant1, run.ant2,
                                      channel_width_hz=run.width_hz,
                                      dish_uvw_rate_m_s=rate, interval_s=obs.interval_s, dtype=obs.dtype,
                                      to_host=False)  # queued on the device; returns at once
        if ready is not None:
            yield from steps_of(*ready)
        ready = (block, times, dish_uvw, predictor.to_host(on_device))
    if ready is not None:
        yield from steps_of(*ready)
