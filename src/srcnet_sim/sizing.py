"""Every byte budget of a run, from its counts alone: the products' sizes, a CPU worker's blocks and packed terms,
the GPU's blocks, and the peaks of simulating and imaging. Imports nothing of srcnet_sim but its errors: the
kernels and the planner both read their budgets here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srcnet_sim.errors import UserInputError

BYTES_PER_COMPLEX64 = 8
BYTES_PER_FLOAT64 = 8
# The seed's image sizing rule for this workflow: npixel^2 x num_channels x 8 bytes with num_channels = 1,
# because its images are one MFS plane whatever the number of channels observed.
IMAGE_CHANNELS = 1
# Per MS row besides DATA and FLAG (1 bit per value), as vis.writer stores them: UVW 24, WEIGHT + SIGMA 2 x 4 x 4,
# ANTENNA1/2 2 x 4, and 8 measured (their StandardStMan's buckets, the tar's headers); the columns constant over a
# time step (TIME, INTERVAL, the ids) take almost nothing in their IncrementalStMan. Measured: the expected size is
# 0-1 % above the staged tar from 16 to 1,024 channels (benchmarks/rehearsal.py, benchmarks/bench_io_run.py),
# more for MSs of a few MB (the fixed parts are upper bounds).
ROW_OVERHEAD_BYTES = 24 + 32 + 8 + 8
FIXED_MS_BYTES = 2_000_000  # subtables and table descriptors
TILE_PADDING_BYTES = 1 << 20  # the last tile of each tiled column (vis.writer.TILE_BYTES) and channel block is whole
# MSv4 (vis.msv4): VISIBILITY (and VISIBILITY_MODEL) raw complex64, UVW raw float64; FLAG, WEIGHT and the two time
# columns Blosc-LZ4 compressed: measured at most MSV4_PACKED_BYTES_PER_VALUE per (baseline, channel, correlation)
# value for FLAG + WEIGHT together (constant weights; RFI flags included) and per row for the time columns.
MSV4_PACKED_BYTES_PER_VALUE = 0.05
MSV4_ROW_BYTES = 24 + 2  # UVW + the packed TIME_CENTROID and EFFECTIVE_INTEGRATION_TIME
FIXED_MSV4_BYTES = 256 * 1024  # metadata, coordinates, antenna and field datasets (measured: 90 KB for AA*)
PROCESS_BASELINE_BYTES = 350_000_000  # python, numpy, numba, casacore loaded
FITS_HEADER_BYTES = 2 * 2880
CHUNK_SAMPLES = 16_000_000  # as imaging.msdata.CHUNK_SAMPLES
STOKES_I_SAMPLE_BYTES = 8 + 4  # a Stokes I sample held for imaging: complex64 visibility, float32 weight
# Imaging working set per image pixel: float32 images (dirty, PSF, model, residual, restored, scratch)
# and ducc0's oversampled grids while gridding and degridding. Calibrated on the default run
# (2024^2 pixels: 886 MB peak resident, of which ~350 MB is the loaded process).
IMAGE_WORKING_BYTES_PER_PIXEL = 120

# Bytes per visibility value (one baseline, channel, correlation) while one time step is predicted: the
# complex128 Stokes sums, the kernel's float64 real/imaginary sums, the complex128 linear correlations,
# the complex64 copy and the noise draws (two float32 and their complex64 sum).
STEP_BYTES_PER_VALUE = 16 + 16 + 16 + 8 + 16
# Per source and channel: Stokes (4 float64), beams (2 dish types, float64), the kernel's Stokes copy.
TERM_BYTES_PER_SOURCE_CHANNEL = 4 * 8 + 2 * 8 + 4 * 8
# With beams that turn on the sky (BEAM=everybeam's MeerKAT dishes), per source and channel one step's H and V beams
# (2 dish types x 2 polarisations, float64), and per visibility value the sums of up to 8 terms (complex128)
# instead of 4 Stokes parameters and the kernel's float64 parts of them.
TURNING_BEAM_BYTES_PER_SOURCE_CHANNEL = 2 * 2 * 8
TURNING_BEAM_STEP_BYTES_PER_VALUE = 16 + 16
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
# Finished blocks a worker may hold besides the one it computes: one queued for the writer, one being written (in
# shared memory that the MSv2 writer's process maps, vis.writer_process: not copied).
RESULTS_HELD = 2
# The MSv2 writer's own process (python, numpy, casacore and its tile caches), beside the run's.
WRITER_PROCESS_BYTES = 80_000_000
# A block's visibilities are at most this size (several blocks give the writer and the workers work to
# overlap), and a run is at least MIN_BLOCKS blocks, and BLOCKS_PER_WORKER per Dask worker, where it has that
# many time steps.
TARGET_BLOCK_BYTES = 128 * 2**20
MIN_BLOCKS = 8
BLOCKS_PER_WORKER = 2
N_CORRELATIONS = 4


@dataclass(frozen=True)
class Estimate:
    """What a run will write and need. Sizes in bytes."""

    n_channels: int
    n_times: int
    n_baselines: int
    n_correlations: int
    n_sources: int
    n_dishes: int
    ms_min_bytes: int
    ms_expected_bytes: int
    image_min_bytes: int
    image_file_bytes: int
    peak_memory_bytes: int
    simulate_peak_bytes: int = 0  # peak memory of the simulation alone (process included): one worker's
    imaging_peak_bytes: int = 0  # peak memory of imaging alone (process included)
    block_times: int = 0  # time steps per block
    block_channels: int = 0  # channels per block
    n_blocks: int = 0
    memory_limit_bytes: int = 0  # the worker budget the blocks were sized to
    msv4_bytes: int = 0  # the MSv4 processing set (VIS_FORMAT=msv4 or both), on disk and staged as its zip

    @property
    def measurements(self) -> int:
        return self.n_channels * self.n_times * self.n_baselines * self.n_correlations

    @property
    def data_column_bytes(self) -> int:
        """The MS's DATA file: complex64 visibilities (the column's type at either precision), without its tiles'
        last padding."""
        return self.measurements * BYTES_PER_COMPLEX64


@dataclass(frozen=True)
class BlockShape:
    """Time steps and channels per block, and the memory a worker needs for it (process included), bytes."""

    n_times: int
    n_channels: int
    worker_peak_bytes: int


def result_bytes(n_times: int, n_channels: int, n_baselines: int, model_data: bool = False, flags: bool = False) -> int:
    """Bytes of one block's result: complex64 visibilities (twice with MODEL_DATA=on: the model too), bool flags
    (RFI=on) and float64 UVW."""
    per_value = 8 * (2 if model_data else 1) + (1 if flags else 0)
    return n_times * n_baselines * (n_channels * N_CORRELATIONS * per_value + 3 * 8 + 8)


def worker_peak_bytes(n_times: int, n_channels: int, n_dishes: int, n_sources: int, n_baselines: int,
                      double_precision: bool = False, model_data: bool = False, flags: bool = False,
                      turning_beams: bool = False) -> int:
    """Peak memory of a worker computing blocks of n_times x n_channels (process and sky model included), bytes.

    The per-source terms of the block's channels dominate with many sources and channels; one time step's
    sums with many baselines; finished results (RESULTS_HELD + 1) with long blocks. The per-dish phasors are
    held for one channel at a time (n_dishes x n_sources), whatever the channels, and the smearing kernel's packed
    terms for a group of source tiles (at most PACKED_TERMS_BYTES). turning_beams: H and V beams evaluated at every
    step (BEAM=everybeam with MeerKAT dishes).
    """
    phasors = n_dishes * n_sources * PHASOR_BYTES_PER_SOURCE_DISH
    packed = min(PACKED_TERMS_BYTES, n_dishes * n_sources * PACKED_VALUES_PER_SOURCE_DISH * (8 if double_precision else 4))
    terms = n_channels * n_sources * (TERM_BYTES_PER_SOURCE_CHANNEL
                                      + (TURNING_BEAM_BYTES_PER_SOURCE_CHANNEL if turning_beams else 0))
    step = n_baselines * n_channels * N_CORRELATIONS * STEP_BYTES_PER_VALUE * (2 if double_precision else 1)
    if turning_beams:
        step += n_baselines * n_channels * N_CORRELATIONS * TURNING_BEAM_STEP_BYTES_PER_VALUE
    results = ((RESULTS_HELD + 1) * result_bytes(n_times, n_channels, n_baselines, model_data, flags)
               * (2 if double_precision else 1))
    if flags:  # a step's copy before the RFI, its residual and the RFI itself
        step += n_baselines * n_channels * N_CORRELATIONS * 3 * 16
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
                memory_limit_bytes: int, double_precision: bool = False, workers: int = 1,
                model_data: bool = False, flags: bool = False, turning_beams: bool = False) -> BlockShape:
    """The block shape for a worker memory budget: as many channels as fit (fewer passes over the sky), then as many
    time steps as fit, at most TARGET_BLOCK_BYTES of results and n_times / max(MIN_BLOCKS, BLOCKS_PER_WORKER x
    workers) steps, so that every worker has blocks to compute.

    Raises UserInputError (MEMORY_LIMIT) when one time step of one channel does not fit.
    """
    def peak(t: int, c: int) -> int:
        return worker_peak_bytes(t, c, n_dishes, n_sources, n_baselines, double_precision, model_data, flags,
                                 turning_beams)

    channels = _largest(n_channels, lambda c: peak(1, c) <= memory_limit_bytes)
    if channels == 0:
        raise UserInputError("MEMORY_LIMIT", f"{human(memory_limit_bytes)} is too small for one time step of one channel "
                             f"({n_sources} sources x {n_dishes} dishes, {n_baselines} baselines), which needs about "
                             f"{human(peak(1, 1))}; give a worker at least that much")
    channels = math.ceil(n_channels / math.ceil(n_channels / channels))  # equal channel ranges
    per_step = max(1, result_bytes(1, channels, n_baselines, model_data, flags))
    min_blocks = max(MIN_BLOCKS, BLOCKS_PER_WORKER * workers)
    most_steps = min(n_times, max(1, TARGET_BLOCK_BYTES // per_step), max(1, math.ceil(n_times / min_blocks)))
    steps = _largest(most_steps, lambda t: peak(t, channels) <= memory_limit_bytes)
    return BlockShape(steps, channels, peak(steps, channels))


def estimate(n_channels: int, n_times: int, n_dishes: int, autocorrelations: bool, n_sources: int,
             npixel: int, double_precision: bool, memory_limit_bytes: int, workers: int = 1,
             model_data: bool = False, flags: bool = False, turning_beams: bool = False) -> Estimate:
    """Sizes of the MS (the seed's minimum and the expected actual size), one image (the seed's minimum and
    the MFS FITS file), the block shape for `workers` workers of `memory_limit_bytes` each, and peak memory of simulating (one worker and the MSv2 writer's process) or imaging, whichever is larger.
    model_data: the MS has a MODEL_DATA column too (MODEL_DATA=on), as large as DATA; flags: blocks carry flags
    (RFI=on; the MS's FLAG column is always written); turning_beams: H and V beams at every step (see
    worker_peak_bytes).

    Raises UserInputError (MEMORY_LIMIT) when the budget does not hold one time step of one channel."""
    limit = memory_limit_bytes
    n_baselines = n_dishes * (n_dishes - 1) // 2 + (n_dishes if autocorrelations else 0)
    n_corr = 4
    rows = n_times * n_baselines
    values = n_channels * n_corr
    bytes_per_vis = 2 * BYTES_PER_COMPLEX64 if double_precision else BYTES_PER_COMPLEX64
    row_bytes = values * bytes_per_vis * (2 if model_data else 1) + (values + 7) // 8 + ROW_OVERHEAD_BYTES
    # One worker computing blocks (worker_peak_bytes: phasors of a block's channels, sums, results held).
    shape = block_shape(n_times, n_channels, n_dishes, n_sources, n_baselines, limit, double_precision, workers,
                        model_data, flags, turning_beams)
    tiled_columns = 3 + (3 if model_data else 2) * -(-n_channels // shape.n_channels)  # UVW, WEIGHT, SIGMA; DATA..
    ms_expected = rows * row_bytes + FIXED_MS_BYTES + tiled_columns * TILE_PADDING_BYTES
    simulate_peak = shape.worker_peak_bytes - PROCESS_BASELINE_BYTES
    n_blocks = -(-n_times // shape.n_times) * -(-n_channels // shape.n_channels)
    # Imaging reads chunks of at most CHUNK_SAMPLES (rows x channels): DATA, FLAG and weights of all correlations,
    # then Stokes I, its weights, imaging weights and degridded model (~100 bytes per sample), plus the images.
    chunk = min(rows * n_channels, CHUNK_SAMPLES)
    imaging_peak = chunk * (n_corr * (bytes_per_vis + 1 + 4) + 8 + 4 + 4 + 8) + npixel * npixel * IMAGE_WORKING_BYTES_PER_PIXEL
    peak = PROCESS_BASELINE_BYTES + max(simulate_peak + WRITER_PROCESS_BYTES, imaging_peak)
    return Estimate(
        n_channels=n_channels, n_times=n_times, n_baselines=n_baselines, n_correlations=n_corr,
        n_sources=n_sources, n_dishes=n_dishes,
        ms_min_bytes=rows * values * BYTES_PER_COMPLEX64,
        ms_expected_bytes=ms_expected,
        image_min_bytes=npixel * npixel * IMAGE_CHANNELS * BYTES_PER_FLOAT64,
        image_file_bytes=npixel * npixel * 4 + FITS_HEADER_BYTES,
        peak_memory_bytes=int(peak),
        simulate_peak_bytes=int(PROCESS_BASELINE_BYTES + simulate_peak),
        imaging_peak_bytes=int(PROCESS_BASELINE_BYTES + imaging_peak),
        block_times=shape.n_times, block_channels=shape.n_channels, n_blocks=n_blocks, memory_limit_bytes=limit,
        msv4_bytes=msv4_bytes(n_times, n_baselines, n_channels, model_data),
    )


def msv4_bytes(n_times: int, n_baselines: int, n_channels: int, model_data: bool = False) -> int:
    """Size of the MSv4 processing set of n_times x n_baselines rows of n_channels x 4 values (vis.msv4's layout):
    raw visibilities (twice with MODEL_DATA=on), raw UVW, packed flags, weights and times, bytes."""
    values = n_times * n_baselines * n_channels * N_CORRELATIONS
    return int(values * (BYTES_PER_COMPLEX64 * (2 if model_data else 1) + MSV4_PACKED_BYTES_PER_VALUE)
               + n_times * n_baselines * MSV4_ROW_BYTES + FIXED_MSV4_BYTES)


GPU_BLOCK_BYTES = 256 << 20  # host memory for one block of GPU-predicted steps
GPU_MAX_STEPS_PER_BLOCK = 16


def gpu_steps_per_block(n_times: int, n_baselines: int, n_channels: int, complex_bytes: int) -> int:
    """Time steps the GPU predicts at once: up to GPU_MAX_STEPS_PER_BLOCK, while their visibilities
    (complex_bytes per value) fit GPU_BLOCK_BYTES on the host."""
    step_bytes = n_baselines * n_channels * N_CORRELATIONS * complex_bytes
    return int(max(1, min(GPU_MAX_STEPS_PER_BLOCK, n_times, GPU_BLOCK_BYTES // step_bytes)))


def gpu_block_device_bytes(n_time: int, n_dish: int, n_chan: int, n_src: int, n_baseline: int, dtype: type) -> int:
    """Device memory the GPU predictor needs for `n_time` steps, all sources at once (no chunking), bytes."""
    real = 4 if np.dtype(dtype) == np.complex64 else 8
    per_source = (n_time * n_chan * n_dish * (3 * 2 * real + 2 * 16)  # Z, X Z and its copy for gemm; exp(i phase)
                  + n_time * n_dish * (4 * real + 4 * 8)  # bandwidth and rate terms, float64 temporaries
                  + n_chan * 4 * real + 8 * 8)  # Stokes, directions, shapes
    fixed = n_time * n_chan * 4 * (2 * real * n_dish * n_dish + 16 * n_dish * n_dish + 2 * 16 * n_baseline)
    return per_source * n_src + fixed


def reorder_bytes(n_rows: int, n_channels: int) -> int:
    """Scratch bytes of an MS's Stokes I reordered for cube imaging (imaging.reorder): per row its UVW (3 float64)
    and per channel a complex64 visibility and a float32 weight."""
    return n_rows * (3 * 8 + n_channels * (8 + 4))


def human(n_bytes: float) -> str:
    """Bytes as a short human-readable string (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n_bytes) < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"
