"""Runtime prediction from a short calibration of the kernels on this machine.

The CPU predictor's cost of one time step is about a + b x channels: `a` the per-step work that does
not depend on the channels (smearing terms, UVW, glue), `b` the per-channel work (phasors, the
per-baseline sums, noise). Both are measured by computing one time step of the run's own telescope
and sky with c1 and c2 channels (after a warm-up that loads the compiled kernels), with the threads
one block will use. The run's compute time is then (a + b x block channels) x blocks in time x channel
blocks / workers; the write time is the MS size over the disk's sequential write speed, measured
by writing and fsync'ing WRITE_PROBE_BYTES in TMPDIR; the run takes about the larger of the two
(the writer overlaps the compute) plus the start-up.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from srcnet_sim.blocks import Block, compute_block

CALIBRATION_CHANNELS = (2, 6)
WRITE_PROBE_BYTES = 64 * 2**20
START_UP_S = 5.0  # imports, planning, subtables: measured on the default run on 2 cores


@dataclass(frozen=True)
class Prediction:
    """Predicted seconds of the simulation (compute, write, total) and how they were obtained."""

    compute_s: float
    write_s: float
    total_s: float
    step_fixed_s: float
    step_per_channel_s: float
    disk_bytes_per_s: float


def _time_block(observation, n_channels: int, threads: int) -> float:
    start = time.perf_counter()
    compute_block(observation, Block(0, 0, 1, 0, n_channels), threads)
    return time.perf_counter() - start


def disk_write_speed(directory: Path, n_bytes: int = WRITE_PROBE_BYTES) -> float:
    """Sequential write speed of the filesystem holding `directory`, bytes/s: `n_bytes` written and fsync'ed."""
    chunk = os.urandom(4 * 2**20)
    fd, name = tempfile.mkstemp(prefix=".srcnet-sim-disk-probe-", dir=directory)
    try:
        start = time.perf_counter()
        written = 0
        while written < n_bytes:
            written += os.write(fd, chunk)
        os.fsync(fd)
        return written / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(name)


def predict(observation, n_times: int, n_channels: int, block_channels: int, ms_bytes: int, threads: int,
            workers: int = 1, scratch: Path | None = None) -> Prediction:
    """Predicted duration of the simulation of `observation` with `workers` workers of `threads` threads."""
    obs = observation if observation.dish_uvw_m is not None else observation.with_geometry()
    c1, c2 = (min(c, n_channels) for c in CALIBRATION_CHANNELS)
    _time_block(obs, 1, threads)  # warm-up: loads the compiled kernels
    t1 = _time_block(obs, c1, threads)
    t2 = _time_block(obs, c2, threads) if c2 > c1 else t1
    per_channel = max((t2 - t1) / (c2 - c1), 0.0) if c2 > c1 else t1 / c1
    fixed = max(t1 - per_channel * c1, 0.0)
    channel_blocks = math.ceil(n_channels / block_channels)
    compute = n_times * (channel_blocks * fixed + n_channels * per_channel) / max(1, workers)
    disk = disk_write_speed(Path(scratch or tempfile.gettempdir()))
    write = ms_bytes / disk
    return Prediction(compute, write, max(compute, write) + START_UP_S, fixed, per_channel, disk)
