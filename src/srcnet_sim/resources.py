"""Sizes, memory and disk preflight of a run, from its settings alone."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

BYTES_PER_COMPLEX64 = 8
BYTES_PER_FLOAT64 = 8
# The seed's image sizing rule for this workflow: npixel^2 x num_channels x 8 bytes with num_channels = 1,
# because its images are one MFS plane whatever the number of channels observed.
IMAGE_CHANNELS = 1
# Per MS row besides DATA: UVW 24, WEIGHT+SIGMA 2 x 4 x 4, TIME/TIME_CENTROID/INTERVAL/EXPOSURE 32,
# eleven int32 ids 44, FLAG_ROW 1, plus FLAG at 1 bit per value; measured overhead ~10 %.
ROW_OVERHEAD_BYTES = 24 + 32 + 32 + 44 + 1
FIXED_MS_BYTES = 2_000_000  # subtables and table descriptors
PROCESS_BASELINE_BYTES = 350_000_000  # python, numpy, numba, casacore loaded
FITS_HEADER_BYTES = 2 * 2880
CHUNK_SAMPLES = 16_000_000  # as imaging.msdata.CHUNK_SAMPLES
# Imaging working set per image pixel: float32 images (dirty, PSF, model, residual, restored, scratch)
# and ducc0's oversampled grids while gridding and degridding. Calibrated on the default run
# (2024^2 pixels: 886 MB peak resident, of which ~350 MB is the loaded process).
IMAGE_WORKING_BYTES_PER_PIXEL = 120


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

    @property
    def measurements(self) -> int:
        return self.n_channels * self.n_times * self.n_baselines * self.n_correlations


def estimate(n_channels: int, n_times: int, n_dishes: int, autocorrelations: bool, n_sources: int,
             npixel: int, double_precision: bool = False, memory_limit_bytes: int | None = None,
             workers: int = 1) -> Estimate:
    """Sizes of the MS (the seed's minimum and the expected actual size), one image (the seed's minimum and
    the MFS FITS file), the block shape for `workers` workers of `memory_limit_bytes` each (default:
    default_memory_limit()), and peak memory of simulating (one worker) or imaging, whichever is larger.

    Raises UserInputError (MEMORY_LIMIT) when the budget does not hold one time step of one channel."""
    from srcnet_sim.blocks import block_shape

    limit = default_memory_limit() if memory_limit_bytes is None else memory_limit_bytes
    n_baselines = n_dishes * (n_dishes - 1) // 2 + (n_dishes if autocorrelations else 0)
    n_corr = 4
    rows = n_times * n_baselines
    values = n_channels * n_corr
    bytes_per_vis = 2 * BYTES_PER_COMPLEX64 if double_precision else BYTES_PER_COMPLEX64
    row_bytes = values * bytes_per_vis + (values + 7) // 8 + ROW_OVERHEAD_BYTES
    ms_expected = int(rows * row_bytes * 1.1) + FIXED_MS_BYTES
    # One worker computing blocks (blocks.worker_peak_bytes: phasors of a block's channels, sums, results held).
    shape = block_shape(n_times, n_channels, n_dishes, n_sources, n_baselines, limit, double_precision, workers)
    simulate_peak = shape.worker_peak_bytes - PROCESS_BASELINE_BYTES
    n_blocks = -(-n_times // shape.n_times) * -(-n_channels // shape.n_channels)
    # Imaging reads chunks of at most CHUNK_SAMPLES (rows x channels): DATA, FLAG and weights of all correlations,
    # then Stokes I, its weights, imaging weights and degridded model (~100 bytes per sample), plus the images.
    chunk = min(rows * n_channels, CHUNK_SAMPLES)
    imaging_peak = chunk * (n_corr * (bytes_per_vis + 1 + 4) + 8 + 4 + 4 + 8) + npixel * npixel * IMAGE_WORKING_BYTES_PER_PIXEL
    peak = PROCESS_BASELINE_BYTES + max(simulate_peak, imaging_peak)
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
    )


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a number near 2^63


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" or not text.isdigit() or int(text) >= UNLIMITED else int(text)


def _cgroup_dirs(root: Path, proc_cgroup: str, controller: str | None) -> list[Path]:
    """The cgroup directories of this process for `controller` (None: the v2 unified hierarchy), innermost first,
    up to the mount point (inside a container the mount point is often the process's own cgroup)."""
    for line in proc_cgroup.splitlines():
        _, controllers, relative = line.split(":", 2)
        if (controller is None and controllers == "") or (controller is not None and controller in controllers.split(",")):
            mount = root if controller is None else root / controller
            dirs, current = [], mount / relative.lstrip("/")
            while True:
                if current.is_dir():
                    dirs.append(current)
                if current == mount or mount not in current.parents:
                    break
                current = current.parent
            return dirs
    return []


def cgroup_available_bytes(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> int | None:
    """Memory this process's cgroups (v2 memory.max, v1 memory.limit_in_bytes) still allow, or None without a limit.

    Usage counts what the kernel cannot simply drop: the inactive file cache is treated as free.
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    available = None
    for controller, limit_file, usage_file, cache_key in ((None, "memory.max", "memory.current", "inactive_file"),
                                                          ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                                                           "total_inactive_file")):
        for directory in _cgroup_dirs(root, proc_cgroup, controller):
            limit = _read_int(directory / limit_file)
            if limit is None:
                continue
            usage = _read_int(directory / usage_file) or 0
            try:
                stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
                usage -= min(usage, int(stat.get(cache_key, 0)))
            except (OSError, ValueError):
                pass
            left = max(limit - usage, 0)
            available = left if available is None else min(available, left)
    return available


def available_memory_bytes() -> int:
    """Memory a run may use now: the machine's available memory, or less where a cgroup (container) limit says so."""
    machine = int(psutil.virtual_memory().available)
    cgroup = cgroup_available_bytes()
    return machine if cgroup is None else min(machine, cgroup)


MEMORY_HEADROOM = 0.8  # share of the available memory a worker's blocks are sized to by default


def default_memory_limit(workers_here: int = 1) -> int:
    """MEMORY_LIMIT's default: MEMORY_HEADROOM of the memory available now (container limit included), shared by
    the workers that run on this machine."""
    return int(MEMORY_HEADROOM * available_memory_bytes() / max(1, workers_here))


def human(n_bytes: float) -> str:
    """Bytes as a short human-readable string (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n_bytes) < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"
