"""The work of a run as blocks (a range of time steps x a range of channels) sized to a memory budget,
and the computation of one block.

A block's result depends only on the block: UVW per time step, the predictor's fixed summation
order (tiles of sources and channels in catalogue order, whatever the threads), and noise seeded per
(time step, channel). Any executor, any block shape and any number of threads therefore give the
same bytes, and a resumed run equals an uninterrupted one.

What crosses a process boundary: the `Observation` (frozen arrays: dishes, sky, times, channels;
sent once per worker) and a `Block` (five integers); back comes a `BlockResult` (arrays). No
settings object, open table or logger travels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.resources import PROCESS_BASELINE_BYTES, human

# Bytes per visibility value (one baseline, channel, correlation) while one time step is predicted: the
# complex128 Stokes sums, the kernel's float64 real/imaginary sums, the complex128 linear correlations,
# the complex64 copy and the noise draws (two float32 and their complex64 sum).
STEP_BYTES_PER_VALUE = 16 + 16 + 16 + 8 + 16
# Per source and channel: Stokes (4 float64), beams (2 dish types, float64), the kernel's Stokes copy.
TERM_BYTES_PER_SOURCE_CHANNEL = 4 * 8 + 2 * 8 + 4 * 8
# Per source and dish: the phasors of one channel (real and imaginary parts, BLAS path) or the delay rates
# (time smearing) and their copy; the tiled smearing kernel needs only a tile of these.
PHASOR_BYTES_PER_SOURCE_DISH = 2 * 8
# The smearing kernel's per-dish terms of a group of source tiles, packed together: at most PACKED_TERMS_BYTES,
# and per source and dish 4 values, 2 per channel (4 with time smearing) and 2 per channel and Stokes parameter
# (4 channels; float32 values, twice that in double precision).
PACKED_TERMS_BYTES = 64 * 2**20
PACKED_VALUES_PER_SOURCE_DISH = 4 + 4 * 4 + 2 * 4 * 4
# Per source, the sky model and its derived arrays (positions, fluxes, shapes, direction cosines, offsets).
SKY_BYTES_PER_SOURCE = 40 * 8
# Finished blocks a worker may hold besides the one it computes: one queued for the writer, one being written.
RESULTS_HELD = 2
# A block's visibilities are at most this size (several blocks give the writer and the workers work to
# overlap), and a run is at least MIN_BLOCKS blocks, and BLOCKS_PER_WORKER per Dask worker, where it has that
# many time steps.
TARGET_BLOCK_BYTES = 128 * 2**20
MIN_BLOCKS = 8
BLOCKS_PER_WORKER = 2
N_CORRELATIONS = 4


@dataclass(frozen=True)
class Block:
    """Time steps [time_start, time_stop) x channels [chan_start, chan_stop); `index` its place in write order."""

    index: int
    time_start: int
    time_stop: int
    chan_start: int
    chan_stop: int

    @property
    def n_times(self) -> int:
        return self.time_stop - self.time_start

    @property
    def n_channels(self) -> int:
        return self.chan_stop - self.chan_start


@dataclass(frozen=True)
class BlockResult:
    """What a block computes: time_s (n_t,) MJD seconds, uvw_m (n_t, n_bl, 3) m, vis (n_t, n_bl, n_c, 4) Jy complex64."""

    block: Block
    time_s: np.ndarray
    uvw_m: np.ndarray
    vis: np.ndarray


@dataclass(frozen=True)
class BlockShape:
    """Time steps and channels per block, and the memory a worker needs for it (process included), bytes."""

    n_times: int
    n_channels: int
    worker_peak_bytes: int


def result_bytes(n_times: int, n_channels: int, n_baselines: int) -> int:
    """Bytes of one block's result: complex64 visibilities and float64 UVW."""
    return n_times * n_baselines * (n_channels * N_CORRELATIONS * 8 + 3 * 8 + 8)


def worker_peak_bytes(n_times: int, n_channels: int, n_dishes: int, n_sources: int, n_baselines: int,
                      double_precision: bool = False) -> int:
    """Peak memory of a worker computing blocks of n_times x n_channels (process and sky model included), bytes.

    The per-source terms of the block's channels dominate with many sources and channels; one time step's
    sums with many baselines; finished results (RESULTS_HELD + 1) with long blocks. The per-dish phasors are
    held for one channel at a time (n_dishes x n_sources), whatever the channels, and the smearing kernel's packed
    terms for a group of source tiles (at most PACKED_TERMS_BYTES).
    """
    phasors = n_dishes * n_sources * PHASOR_BYTES_PER_SOURCE_DISH
    packed = min(PACKED_TERMS_BYTES, n_dishes * n_sources * PACKED_VALUES_PER_SOURCE_DISH * (8 if double_precision else 4))
    terms = n_channels * n_sources * TERM_BYTES_PER_SOURCE_CHANNEL
    step = n_baselines * n_channels * N_CORRELATIONS * STEP_BYTES_PER_VALUE * (2 if double_precision else 1)
    results = (RESULTS_HELD + 1) * result_bytes(n_times, n_channels, n_baselines) * (2 if double_precision else 1)
    return PROCESS_BASELINE_BYTES + n_sources * SKY_BYTES_PER_SOURCE + phasors + packed + terms + step + results


def _largest(limit: int, fits) -> int:
    """The largest n in [1, limit] with fits(n) (fits is monotone), or 0 when even 1 does not fit."""
    if not fits(1):
        return 0
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def block_shape(n_times: int, n_channels: int, n_dishes: int, n_sources: int, n_baselines: int,
                memory_limit_bytes: int, double_precision: bool = False, workers: int = 1) -> BlockShape:
    """The block shape for a worker memory budget: as many channels as fit (fewer passes over the sky), then as many
    time steps as fit, at most TARGET_BLOCK_BYTES of results and n_times / max(MIN_BLOCKS, BLOCKS_PER_WORKER x
    workers) steps, so that every worker has blocks to compute.

    Raises UserInputError (MEMORY_LIMIT) when one time step of one channel does not fit.
    """
    def peak(t: int, c: int) -> int:
        return worker_peak_bytes(t, c, n_dishes, n_sources, n_baselines, double_precision)

    channels = _largest(n_channels, lambda c: peak(1, c) <= memory_limit_bytes)
    if channels == 0:
        raise UserInputError("MEMORY_LIMIT", f"{human(memory_limit_bytes)} is too small for one time step of one channel "
                             f"({n_sources} sources x {n_dishes} dishes, {n_baselines} baselines), which needs about "
                             f"{human(peak(1, 1))}; give a worker at least that much")
    channels = math.ceil(n_channels / math.ceil(n_channels / channels))  # equal channel ranges
    per_step = max(1, result_bytes(1, channels, n_baselines))
    min_blocks = max(MIN_BLOCKS, BLOCKS_PER_WORKER * workers)
    most_steps = min(n_times, max(1, TARGET_BLOCK_BYTES // per_step), max(1, math.ceil(n_times / min_blocks)))
    steps = _largest(most_steps, lambda t: peak(t, channels) <= memory_limit_bytes)
    return BlockShape(steps, channels, peak(steps, channels))


def make_blocks(n_times: int, n_channels: int, shape: BlockShape, first_time: int = 0) -> list[Block]:
    """Blocks covering time steps [first_time, n_times) x all channels, in write order: time-major, then channel."""
    blocks = []
    for t0 in range(first_time, n_times, shape.n_times):
        for c0 in range(0, n_channels, shape.n_channels):
            blocks.append(Block(len(blocks), t0, min(t0 + shape.n_times, n_times), c0, min(c0 + shape.n_channels, n_channels)))
    return blocks


def compute_block(observation, block: Block, threads: int | None = None, backend: str = "cpu") -> BlockResult:
    """Simulate one block with the `backend` predictor ("cpu" or "gpu": `simulate.observation.simulate`);
    `threads` sets numba's threads for this call (the calling thread's setting, as numba.set_num_threads does)."""
    from srcnet_sim.simulate.observation import simulate

    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    n_bl = len(observation.baselines[0])
    time_s = np.empty(block.n_times)
    uvw_m = np.empty((block.n_times, n_bl, 3))
    vis = np.empty((block.n_times, n_bl, block.n_channels, N_CORRELATIONS), dtype=np.complex64)
    steps = simulate(observation, range(block.time_start, block.time_stop), slice(block.chan_start, block.chan_stop),
                     backend=backend)
    for i, step in enumerate(steps):
        time_s[i], uvw_m[i], vis[i] = step.time_s, step.uvw_m, step.vis
    return BlockResult(block, time_s, uvw_m, vis)
