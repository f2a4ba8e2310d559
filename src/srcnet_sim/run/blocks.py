"""The work of a run as blocks (a range of time steps x a range of channels, their shape sized by
sizing.block_shape to a memory budget), and the computation of one block.

A block's result depends only on the block: UVW per time step, the predictor's fixed summation
order (tiles of sources and channels in catalogue order, whatever the threads), and noise seeded per
(time step, channel). Any executor, any block shape and any number of threads therefore give the
same bytes, and a resumed run equals an uninterrupted one.

What crosses a process boundary: the `Observation` (frozen arrays: dishes, sky, times, channels;
sent once per worker) and a `Block` (five integers); back comes a `BlockResult` (arrays). No
settings object, open table or logger travels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from srcnet_sim.sizing import N_CORRELATIONS, BlockShape
from srcnet_sim.simulate.observation import simulate
from srcnet_sim.simulate.predictors import make_predictor


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
    """What a block computes: time_s (n_t,) MJD seconds, uvw_m (n_t, n_bl, 3) m, vis (n_t, n_bl, n_c, 4) Jy complex64,
    model the same shape (before gains and noise) when the observation keeps it, else None; flag the same shape
    (bool) and rfi_score (the block's summed simulate.flagger counts) with RFI, else None; stored: the worker wrote
    it into the run's MSv4 store already (run.worker_writes; its arrays may then be empty)."""

    block: Block
    time_s: np.ndarray
    uvw_m: np.ndarray
    vis: np.ndarray
    model: np.ndarray | None = None
    flag: np.ndarray | None = None
    rfi_score: np.ndarray | None = None
    stored: bool = False


def make_blocks(n_times: int, n_channels: int, shape: BlockShape, first_time: int = 0) -> list[Block]:
    """Blocks covering time steps [first_time, n_times) x all channels, in write order: time-major, then channel."""
    blocks = []
    for t0 in range(first_time, n_times, shape.n_times):
        for c0 in range(0, n_channels, shape.n_channels):
            blocks.append(Block(len(blocks), t0, min(t0 + shape.n_times, n_times), c0, min(c0 + shape.n_channels, n_channels)))
    return blocks


def compute_block(observation, block: Block, threads: int | None = None, backend: str = "cpu",
                  allocate: Callable[[tuple[int, ...], type], np.ndarray] = np.empty) -> BlockResult:
    """Simulate one block with the `backend` predictor (a resolved name, "cpu" or "gpu": predictors.PREDICTORS);
    `threads` sets numba's threads for this call (the calling thread's setting, as numba.set_num_threads does).
    `allocate(shape, dtype)` makes the result's visibilities, model and flags (vis.writer_process.shared_empty
    where the run's own process writes them: its MSv2 writer maps them without a copy)."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    n_bl = len(observation.baselines[0])
    time_s = np.empty(block.n_times)
    uvw_m = np.empty((block.n_times, n_bl, 3))
    shape = (block.n_times, n_bl, block.n_channels, N_CORRELATIONS)
    vis = allocate(shape, np.complex64)
    model = allocate(shape, np.complex64) if observation.model_data else None
    flag = allocate(shape, bool) if observation.rfi is not None else None
    score = np.zeros(4, dtype=np.int64) if observation.rfi is not None else None
    steps = simulate(observation, range(block.time_start, block.time_stop), slice(block.chan_start, block.chan_stop),
                     predictor=make_predictor(backend))
    for i, step in enumerate(steps):
        time_s[i], uvw_m[i], vis[i] = step.time_s, step.uvw_m, step.vis
        if model is not None:
            model[i] = step.model
        if flag is not None:
            flag[i] = step.flag
            score += step.rfi_score
    return BlockResult(block, time_s, uvw_m, vis, model, flag, score)
