"""Runtime prediction from a short calibration of the kernels on this machine.

The CPU predictor's cost of a block is about k + steps x (a + b x channels): `k` the per-block work
(source terms, beams), `a` the per-step work that does not depend on the channels (smearing terms,
glue), `b` the per-channel work (phasors, the per-baseline sums, noise). They are measured by
computing blocks of the run's own telescope and sky - 1 step x c1 channels, CALIBRATION_STEPS steps x c1 and
x c2 channels (the channel slope from blocks of several steps: single steps were too short to time it on a
shared machine, and gave two thirds of it) - each the median of REPEATS after a warm-up that loads the
compiled kernels, with the threads one block will use. The run's compute time follows for its block
shape, divided by the workers; the write time is the MS size over the MS write path's speed, measured by writing
WRITE_PROBE_STEPS time steps of the run's baselines (at most WRITE_PROBE_CHANNELS channels) into a
MeasurementSet in TMPDIR as the run does (put_rows, flush, fsync). The writer overlaps the compute,
but on this machine's cores it also takes CPU from it: the run takes about the compute plus the
share of the writing that does not fit beside it (all of it when the compute uses every core), plus
the start-up. The disk's own sequential write speed (WRITE_PROBE_BYTES written and fsync'ed) is
reported beside it.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from srcnet_sim.run.blocks import Block, compute_block

CALIBRATION_CHANNELS = (2, 6)
CALIBRATION_STEPS = 3
REPEATS = 3
WRITE_PROBE_STEPS = 8
WRITE_PROBE_CHANNELS = 64
WRITE_PROBE_BYTES = 64 * 2**20
START_UP_S = 1.0  # imports, planning, subtables, loading the compiled kernels, staging: the default run on 2 cores


@dataclass(frozen=True)
class Prediction:
    """Predicted seconds of the simulation (compute, write, total) and how they were obtained."""

    compute_s: float
    write_s: float
    total_s: float
    step_fixed_s: float
    step_per_channel_s: float
    disk_bytes_per_s: float
    ms_bytes_per_s: float


def _time_block(observation, n_times: int, n_channels: int, threads: int) -> float:
    """Median seconds of REPEATS computations of a block of `n_times` time steps x `n_channels` channels."""
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        compute_block(observation, Block(0, 0, n_times, 0, n_channels), threads)
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2]


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


def ms_write_speed(observation, directory: Path) -> float:
    """Bytes/s of the MS write path: WRITE_PROBE_STEPS steps of the run's baselines written, flushed and fsync'ed."""
    import numpy as np

    from srcnet_sim.vis.writer import MeasurementSetWriter, MSDescription

    ant1, ant2 = observation.baselines
    n_bl, n_chan = len(ant1), min(len(observation.freq_hz), WRITE_PROBE_CHANNELS)
    rows = WRITE_PROBE_STEPS * n_bl
    description = MSDescription(telescope=observation.telescope, freq_hz=observation.freq_hz[:n_chan],
                                channel_width_hz=observation.channel_width_hz,
                                phase_centre_rad=(observation.ra_rad, observation.dec_rad), field_name="probe",
                                time_range_s=(0.0, 1.0), history=(), application="srcnet-sim calibrate")
    data = np.ones((WRITE_PROBE_STEPS, n_bl, n_chan, 4), dtype=np.complex64)
    with tempfile.TemporaryDirectory(prefix=".srcnet-sim-ms-probe-", dir=directory) as work:
        path = Path(work) / "probe.ms"
        with MeasurementSetWriter(path, description) as writer:
            start = time.perf_counter()
            writer.put_rows(0, np.arange(WRITE_PROBE_STEPS, dtype=float), 1.0, ant1, ant2,
                            np.zeros((WRITE_PROBE_STEPS, n_bl, 3)), data, np.ones(n_bl))
            writer.flush()
            seconds = time.perf_counter() - start
    return rows * (n_chan * 4 * 8 + 100) / seconds


def predict(observation, n_times: int, n_channels: int, block_times: int, block_channels: int, ms_bytes: int, threads: int,
            workers: int = 1, cores: int = 1, scratch: Path | None = None) -> Prediction:
    """Predicted duration of the simulation of `observation` with `workers` workers of `threads` threads (on
    `cores` cores: with workers == 1 the writer shares them)."""
    obs = observation if observation.dish_uvw_m is not None else observation.with_geometry()
    c1, c2 = (min(c, n_channels) for c in CALIBRATION_CHANNELS)
    steps = min(CALIBRATION_STEPS, n_times)
    _time_block(obs, 1, 1, threads)  # warm-up: loads the compiled kernels
    t1 = _time_block(obs, 1, c1, threads)
    t3 = _time_block(obs, steps, c1, threads) if steps > 1 else t1
    t2 = _time_block(obs, steps, c2, threads) if c2 > c1 else t3
    per_channel = max((t2 - t3) / (steps * (c2 - c1)), 0.0) if c2 > c1 else 0.0
    step_c1 = (t3 - t1) / (steps - 1) if steps > 1 else t1
    fixed = max(step_c1 - per_channel * c1, 0.0)
    per_block = max(t1 - step_c1, 0.0)
    channel_blocks = math.ceil(n_channels / block_channels)
    time_blocks = math.ceil(n_times / max(1, block_times))
    compute = (time_blocks * channel_blocks * per_block
               + n_times * (channel_blocks * fixed + n_channels * per_channel)) / max(1, workers)
    directory = Path(scratch or tempfile.gettempdir())
    disk = disk_write_speed(directory)
    ms_speed = ms_write_speed(obs, directory)
    write = ms_bytes / ms_speed
    spare_cores = max(0, cores - threads) if workers == 1 else 0
    total = compute + write if spare_cores == 0 else max(compute, write)
    return Prediction(compute, write, total + START_UP_S, fixed, per_channel, disk, ms_speed)


def predict_plan(run_plan):
    """predict() for a run plan (run.plan.Plan): its observation, sizes and executor on this machine's cores.
    Returns (Prediction, ExecutorOptions)."""
    from srcnet_sim.run.executors import available_cores, executor_options

    s, e = run_plan.settings, run_plan.estimate
    options = executor_options(s.executor, s.dask_scheduler_address, s.dask_workers, s.worker_threads, None)
    prediction = predict(run_plan.observation, e.n_times, e.n_channels, e.block_times, e.block_channels,
                         e.ms_expected_bytes, options.threads, options.workers if options.kind == "dask" else 1,
                         available_cores())
    return prediction, options
