"""The observation being simulated: telescope, sky, sample times, channels, and their per-step geometry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from srcnet_sim.instrument import Telescope
from srcnet_sim.instrument.beams import dish_beams, dish_types, has_rotating_beams, polarised_beams
from srcnet_sim.instrument.gains import DishGains
from srcnet_sim.instrument.rfi import RfiModel
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.baseline_kernel import PackingBuffers
from srcnet_sim.simulate.corrupt import apply_jones
from srcnet_sim.simulate.flagger import flag_residual
from srcnet_sim.simulate.noise import add_noise, baseline_sigma_jy, sefd_jy
from srcnet_sim.simulate.predict import SourceTerms, baseline_pairs
from srcnet_sim.simulate.predictors import CpuStrategy, PredictInputs, Predictor
from srcnet_sim import sizing
from srcnet_sim.sky import SkyModel

RATE_STEP_S = 1.0  # half-step of the central difference giving d(uvw)/dt
# With spectral lines, the channels are predicted in aligned groups of this many, each with only the sources that
# shine in it: a channel's cost does not grow with the lines elsewhere, and its bytes do not depend on the blocks.
LINE_CHANNEL_GROUP = 32


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
        gains: the dishes' direction-independent Jones terms (GAINS=on), applied before the noise; None: perfect.
        model_data: keep each step's visibilities before gains and noise too (TimeStep.model, MODEL_DATA=on).
        rfi: the interferers added after the gains (RFI=on), flagged at rfi_flag_sigma (simulate.flagger); None: none.
        dtype: complex64 or complex128.
        dish_uvw_m, dish_uvw_rate_m_s: (n_time, n_dish, 3) per-dish UVW (m) and d(UVW)/dt (m/s, time smearing
            only) of every time step, or None until `with_geometry` computes them.
        parallactic_rad: (n_time,) parallactic angle of the phase centre at the dishes' centroid at every time step,
            when the beams turn with it (rotating_beams), computed by `with_geometry`; else None.
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
    gains: DishGains | None = None
    model_data: bool = False
    rfi: RfiModel | None = None
    rfi_flag_sigma: float = 5.0
    dtype: type = np.complex64
    dish_uvw_m: np.ndarray | None = None
    dish_uvw_rate_m_s: np.ndarray | None = None
    parallactic_rad: np.ndarray | None = None

    @property
    def rotating_beams(self) -> bool:
        """Whether some dishes' beams differ between H and V and turn with the parallactic angle."""
        return has_rotating_beams(self.beam, self.telescope.diameters_m)

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
        return replace(self, dish_uvw_m=self.dish_uvw(times), dish_uvw_rate_m_s=rate,
                       parallactic_rad=self.parallactic_angles() if self.rotating_beams else None)

    def parallactic_angles(self) -> np.ndarray:
        """(n_time,) parallactic angle of the phase centre at every time step, seen from the dishes' centroid, rad.

        One angle for all dishes: across the MeerKAT dishes (within 8 km of the core) it varies by less than 0.1 deg.
        """
        return geometry.parallactic_angle_rad(self.telescope.itrf_m.mean(axis=0), self.times_s, self.ra_rad,
                                              self.dec_rad)

    @property
    def baselines(self) -> tuple[np.ndarray, np.ndarray]:
        return baseline_pairs(self.telescope.n_dish, self.autocorrelations)

    def source_terms(self, channels: slice = slice(None)) -> SourceTerms:
        """Per-source inputs of the predictor (directions, fluxes per channel, beams, shapes) for `channels`.

        With spectral lines, `channels` lies within one group of `channel_pieces`, and the terms hold only the
        sources that shine in that group: the continuum sources and the lines whose support overlaps it.
        """
        freq_hz = self.freq_hz[channels]
        sky, lmn, offset, gaussian = self._sky_terms
        if sky.has_lines:
            keep = self._sources_of_group(channels.indices(len(self.freq_hz))[0] // LINE_CHANNEL_GROUP)
            sky, lmn, offset, gaussian = sky.select(keep), lmn[keep], offset[keep], gaussian[keep]
        stokes = sky.channel_stokes(freq_hz, self.channel_width_hz)
        n_point = int(np.count_nonzero(~sky.is_gaussian))
        if self.rotating_beams:
            jones = polarised_beams(self.beam, lmn, offset, freq_hz, self.telescope.diameters_m)
            return SourceTerms(lmn=lmn, stokes=stokes, beams=np.empty((0, len(freq_hz), len(lmn))), gaussian=gaussian,
                               n_point=n_point, jones=jones)
        beams, _ = dish_beams(self.beam, offset, freq_hz, self.telescope.diameters_m)
        return SourceTerms(lmn=lmn, stokes=stokes, beams=beams, gaussian=gaussian, n_point=n_point)

    def channel_pieces(self, channels: slice) -> list[slice]:
        """`channels` (step 1) cut where it crosses a group of LINE_CHANNEL_GROUP channels, when the sky has lines
        (each piece is predicted with its group's sources, whatever the block); the whole slice otherwise."""
        start, stop, _ = channels.indices(len(self.freq_hz))
        if not self._sky_terms[0].has_lines:
            return [slice(start, stop)]
        cuts = [start, *range((start // LINE_CHANNEL_GROUP + 1) * LINE_CHANNEL_GROUP, stop, LINE_CHANNEL_GROUP), stop]
        return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]

    def _sources_of_group(self, group: int) -> np.ndarray:
        """(n_src,) bool over `_sky_terms`' sky: the sources with flux in channel group `group` (continuum, or a
        line whose support overlaps the group's band)."""
        sky = self._sky_terms[0]
        first = group * LINE_CHANNEL_GROUP
        last = min(first + LINE_CHANNEL_GROUP, len(self.freq_hz)) - 1
        lo_edge = self.freq_hz[first] - self.channel_width_hz / 2
        hi_edge = self.freq_hz[last] + self.channel_width_hz / 2
        lo, hi = sky.line_support_hz()
        return sky.has_continuum() | ((hi > lo_edge) & (lo < hi_edge))

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
    """One simulated time step: uvw (n_bl, 3) m, vis (n_bl, n_chan, 4) Jy; model (n_bl, n_chan, 4) Jy the
    visibilities before gains and noise when the observation keeps them (model_data), else None; flag
    (n_bl, n_chan, 4) bool and rfi_score (simulate.flagger.SCORE_FIELDS) with RFI, else None."""

    index: int
    time_s: float
    uvw_m: np.ndarray
    vis: np.ndarray
    model: np.ndarray | None = None
    flag: np.ndarray | None = None
    rfi_score: np.ndarray | None = None


def simulate(obs: Observation, time_indices: range | None = None, channels: slice = slice(None),
             predictor: Predictor | None = None) -> Iterator[TimeStep]:
    """Yield the visibilities of each time step in turn (of the channels `channels`, a slice with step 1).

    predictor: the strategy that predicts them (predictors.make_predictor; default the CPU's). It takes
    predictor.steps_per_call steps at a time (CPU: one; GPU: a small block), one call ahead: the device
    computes call n + 1 while the steps of call n are yielded (and written). Memory holds one call's steps.
    """
    if obs.dish_uvw_m is None:
        obs = obs.with_geometry()
    elif obs.rotating_beams and obs.parallactic_rad is None:  # the geometry of another beam model
        obs = replace(obs, parallactic_rad=obs.parallactic_angles())
    predictor = CpuStrategy() if predictor is None else predictor
    run = _StepInputs.of(obs, channels)
    indices = list(range(len(obs.times_s)) if time_indices is None else time_indices)
    per_call = predictor.steps_per_call(len(obs.times_s), len(run.ant1), len(obs.freq_hz), obs.dtype)

    def steps_of(call: list[int], dish_uvw: np.ndarray, vis: np.ndarray) -> Iterator[TimeStep]:
        for i, t_index in enumerate(call):
            yield run.step(obs, t_index, float(obs.times_s[t_index]), dish_uvw[i], np.ascontiguousarray(vis[i]))

    ready = None  # the previous call's steps, on the host
    for start in range(0, len(indices), per_call):
        call = indices[start:start + per_call]
        dish_uvw = obs.dish_uvw_m[call]
        rate = obs.dish_uvw_rate_m_s[call] if run.pieces[0].smear_time else None
        parallactic = None if obs.parallactic_rad is None else obs.parallactic_rad[call]
        pending = [predictor.submit(piece, dish_uvw, rate, parallactic) for piece in run.pieces]  # the GPU queues them at once
        if ready is not None:
            yield from steps_of(*ready)
        ready = None
        results = [p.result() for p in pending]
        ready = (call, dish_uvw, results[0] if len(results) == 1 else np.concatenate(results, axis=2))
    if ready is not None:
        yield from steps_of(*ready)


@dataclass(frozen=True)
class _StepInputs:
    """What every time step of a `simulate` call shares: the predictor's inputs of each piece of its channels
    (Observation.channel_pieces; one piece without spectral lines), the baselines, noise, the first channel and
    the channels' frequencies (Hz, for the gains)."""

    pieces: tuple[PredictInputs, ...]
    ant1: np.ndarray
    ant2: np.ndarray
    first_channel: int
    sigma: np.ndarray
    freq_hz: np.ndarray

    @classmethod
    def of(cls, obs: Observation, channels: slice) -> "_StepInputs":
        ant1, ant2 = obs.baselines
        _, dish_type = dish_types(obs.beam, obs.telescope.diameters_m)
        buffers = PackingBuffers()
        pieces = tuple(
            PredictInputs(terms=obs.source_terms(piece), dish_type=dish_type, freq_hz=obs.freq_hz[piece],
                          ant1=ant1, ant2=ant2, channel_width_hz=obs.channel_width_hz if obs.smearing != "off" else 0.0,
                          smear_time=obs.smearing == "bandwidth+time", interval_s=obs.interval_s,
                          dtype=obs.dtype, buffers=buffers)
            for piece in obs.channel_pieces(channels))
        return cls(pieces=pieces, ant1=ant1, ant2=ant2, first_channel=channels.indices(len(obs.freq_hz))[0],
                   sigma=obs.baseline_sigma(), freq_hz=obs.freq_hz[channels])

    def step(self, obs: Observation, t_index: int, time_s: float, dish_uvw: np.ndarray, vis: np.ndarray) -> TimeStep:
        """The TimeStep of predicted `vis` (n_bl, n_chan, 4): corrupted by the gains, RFI added, then noise added
        (in place), when the observation has them (a copy kept before, with model_data), then flagged (with RFI).
        The gains and the RFI are evaluated at the sample time (MJD s) of the step."""
        ant1, ant2 = self.ant1, self.ant2
        sample_s = float(obs.times_s[t_index])
        model = vis.copy() if obs.model_data else None
        if obs.gains is not None:
            apply_jones(vis, obs.gains.jones(sample_s, self.freq_hz), ant1, ant2)
        before, rfi = None, None
        if obs.rfi is not None:
            before = vis.copy()
            rfi = obs.rfi.visibilities(sample_s, dish_uvw, self.freq_hz, obs.channel_width_hz, obs.interval_s, ant1, ant2)
            if rfi is None:
                rfi = np.zeros(vis.shape[:2], dtype=np.complex128)
            vis[:, :, 0] += rfi.astype(vis.dtype)
            vis[:, :, 3] += rfi.astype(vis.dtype)
        if obs.noise:
            add_noise(vis, self.sigma, obs.seed, t_index, ant1 == ant2, self.first_channel)
        flag, score = (None, None) if rfi is None else flag_residual(vis - before, rfi, self.sigma, obs.rfi_flag_sigma)
        return TimeStep(index=t_index, time_s=time_s, uvw_m=dish_uvw[ant1] - dish_uvw[ant2], vis=vis, model=model,
                        flag=flag, rfi_score=score)


def gpu_block_device_bytes(obs: Observation) -> tuple[int, int]:
    """(steps per GPU call, device memory the GPU predictor needs for one call with all sources at once, bytes).

    With less free device memory it processes the sources (and channels) in chunks instead.
    """
    n_baselines = len(obs.baselines[0])
    steps = sizing.gpu_steps_per_block(len(obs.times_s), n_baselines, len(obs.freq_hz), np.dtype(obs.dtype).itemsize)
    return steps, sizing.gpu_block_device_bytes(steps, obs.telescope.n_dish, len(obs.freq_hz), len(obs.sky),
                                                n_baselines, obs.dtype)
