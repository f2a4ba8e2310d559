"""Checks a run makes before any work: sidecar values, the image grid, memory, disk and path lengths.

Each check raises UserInputError naming the setting to change; workflow.plan() and workflow.preflight()
call them, so that a bad value costs the start-up time, not the simulation.
"""

from __future__ import annotations

import math
import os
from argparse import Namespace
from pathlib import Path

import numpy as np
import psutil

from srcnet_sim.config import MIN_NPIXEL, Settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.input_files import directory, regular_file
from srcnet_sim.products import naming, obscore, sidecar
from srcnet_sim.resources import (IMAGE_WORKING_BYTES_PER_PIXEL, PROCESS_BASELINE_BYTES, Estimate,
                                  available_memory_bytes, free_bytes, human)
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.beams import SPEED_OF_LIGHT_M_S
from srcnet_sim.telescope import Telescope

# Which setting a sidecar value comes from (JSON path in the sidecar -> setting).
SIDECAR_SETTINGS = {
    "namespace": "RUCIO_NAMESPACE", "name": "FILE_PREFIX", "lifetime": "RUCIO_LIFETIME", "dataset_name": "OBS_ID",
    "meta/obs_collection": "OBS_COLLECTION", "meta/obs_id": "OBS_ID", "meta/obs_publisher_did": "IVOID_AUTHORITY",
    "meta/access_url": "RUCIO_NAMESPACE", "meta/s_ra": "PHASE_CENTER_RA_DEG", "meta/s_dec": "PHASE_CENTER_DEC_DEG",
    "meta/em_min": "END_FREQ_HZ", "meta/em_max": "START_FREQ_HZ", "meta/em_xel": "FREQ_INC_HZ",
    "meta/t_exptime": "OBS_LENGTH_HOURS", "meta/t_resolution": "NUM_TIME_STAMPS", "meta/t_xel": "NUM_TIME_STAMPS",
    "meta/s_xel1": "IMAGING_NPIXEL", "meta/s_xel2": "IMAGING_NPIXEL",
}
UV_CHECK_TIMES = 24  # the projected baselines are checked at up to this many times of the observation
# In resources.estimate a time step holds n_chan x n_dish x n_src phasors (8 bytes) and n_chan x n_baselines x 4
# correlations of visibilities and sums (32 bytes): the sources dominate above this ratio of the two counts.
SOURCE_TERM_RATIO = 16


def _probe_record(settings: Settings, product: str) -> dict:
    """Placeholder ObsCore values of the right types and ranges: only the settings' own values can fail."""
    s = settings
    wavelengths = {"em_min": SPEED_OF_LIGHT_M_S / s.end_freq_hz, "em_max": SPEED_OF_LIGHT_M_S / s.start_freq_hz,
                   "em_xel": s.n_channels, "t_min": 58000.0, "t_max": 58000.1, "s_ra": s.phase_center_ra_deg,
                   "s_dec": s.phase_center_dec_deg, "s_resolution": 1.0}
    if product == "vis":
        return {"dataproduct_type": "visibility", "calib_level": 1, "access_format": "application/x-tar",
                "instrument_name": obscore.INSTRUMENT, "em_res_power": 1.0, "t_exptime": s.length_s,
                "t_resolution": s.interval_s, "t_xel": s.num_time_stamps, "pol_states": "/XX/XY/YX/YY/", "pol_xel": 4,
                **wavelengths}
    return {"dataproduct_type": "image", "calib_level": 3, "access_format": "image/fits",
            "instrument_name": obscore.INSTRUMENT, "s_xel1": s.imaging_npixel, "s_xel2": s.imaging_npixel,
            "s_pixel_scale": 1.0, "s_fov": 1.0, "s_region": "POLYGON ICRS" + " 1.0 1.0" * 4, "pol_states": "/I/",
            "pol_xel": 1, **wavelengths}


def check_sidecar_values(settings: Settings, identity: obscore.Identity, staged_names: dict[str, str]) -> None:
    """Validate each product's sidecar schema against the settings' values (namespace, ids, collection...)."""
    for product, name in staged_names.items():
        meta = {**obscore._common(identity, name, 0), **_probe_record(settings, product)}
        document = {"namespace": settings.rucio_namespace, "name": name, "lifetime": settings.rucio_lifetime,
                    "meta": meta, "dataset_name": settings.obs_id}
        problem = sidecar.problem(document)
        if problem:
            where = problem.split(":", 1)[0]
            setting = SIDECAR_SETTINGS.get(where)
            if setting is None:  # a placeholder failed: the probe, not the user, is wrong
                raise RuntimeError(f"sidecar probe of {name}: {problem}")
            raise UserInputError(setting, f"gives a {name}.meta that the SRCNet sidecar schema refuses ({problem})")


def check_horizon(setting: str, npix: int, cell_rad: float) -> None:
    """An image (SIN projection) must lie within the visible hemisphere: its corners at direction cosine < 1."""
    half_diagonal = math.sqrt(2.0) * npix * cell_rad / 2.0
    if half_diagonal >= 1.0:
        raise UserInputError(setting, f"{cell_rad:.4g} rad x {npix} pixels reaches past the horizon (image corners at "
                             f"direction cosine {half_diagonal:.3g}); use a cell below {math.sqrt(2.0) / npix:.4g} rad")


def _memory_for_run() -> int:
    """Memory available to the run: what is free now plus what this process holds already (estimates count the
    loaded process, and a container's usage includes it)."""
    return available_memory_bytes() + psutil.Process().memory_info().rss


def check_imaging_memory(setting: str, npix: int) -> None:
    """Refuse an image too large for this machine's (or container's) available memory."""
    need = PROCESS_BASELINE_BYTES + npix * npix * IMAGE_WORKING_BYTES_PER_PIXEL
    available = _memory_for_run()
    if need > available:
        raise UserInputError(setting, f"imaging {npix}^2 pixels needs about {human(need)} of memory but {human(available)} "
                             "is available here (container limit included); use fewer pixels or give it more memory")


def check_image_grid(settings: Settings, telescope: Telescope, times_s: np.ndarray, cell_rad: float) -> None:
    """Refuse an image grid that cannot hold any baseline, or an image wider than the visible sky.

    The uv grid holds |u|, |v| < 1 / (2 cell); the shortest projected baseline (nearest pair of dishes in the
    uv plane, at the lowest frequency) is found at up to UV_CHECK_TIMES times of the observation.
    """
    from scipy.spatial import cKDTree

    check_horizon("IMAGING_CELLSIZE", settings.imaging_npixel, cell_rad)
    picks = np.unique(np.linspace(0, len(times_s) - 1, min(len(times_s), UV_CHECK_TIMES)).round().astype(int))
    dish_uvw = geometry.dish_uvw(telescope.itrf_m, times_s[picks], *settings.phase_centre_rad)
    shortest_m = min(float(cKDTree(uvw[:, :2]).query(uvw[:, :2], k=2)[0][:, 1].min()) for uvw in dish_uvw)
    shortest = shortest_m * settings.start_freq_hz / SPEED_OF_LIGHT_M_S
    limit = 1.0 / (2.0 * cell_rad)
    if shortest >= limit:
        raise UserInputError("IMAGING_CELLSIZE", f"a cell of {cell_rad:.4g} rad holds baselines up to {limit:.0f} "
                             f"wavelengths but the shortest is {shortest:.0f}: no visibility would fall on the image; "
                             f"use a cell below {1.0 / (2.0 * shortest):.4g} rad (or unset it for FOV / npixel)")


def memory_problem(settings: Settings, sizes: Estimate, images: bool) -> UserInputError | None:
    """Why the run's estimated peak memory exceeds what this machine (or its container) has available, or None."""
    need = max(sizes.simulate_peak_bytes, sizes.imaging_peak_bytes if images else 0)
    available = _memory_for_run()
    if need <= available:
        return None
    if images and sizes.imaging_peak_bytes >= sizes.simulate_peak_bytes:
        setting, what = "IMAGING_NPIXEL", f"imaging {settings.imaging_npixel}^2 pixels"
    elif sizes.n_sources * sizes.n_dishes >= SOURCE_TERM_RATIO * sizes.n_baselines:  # phasors dominate
        setting = "SYNTHETIC_SOURCES" if settings.sky_model.strip().upper() == "SYNTHETIC" else "SKY_MODEL"
        what = f"simulating {sizes.n_sources} sources x {sizes.n_dishes} dishes x {sizes.n_channels} channels"
    else:  # one time step's visibilities dominate
        setting = "FREQ_INC_HZ"
        what = f"simulating {sizes.n_channels} channels x {sizes.n_baselines} baselines per time step"
    return UserInputError(setting, f"{what} needs about {human(need)} of memory but {human(available)} is "
                          "available here (container limit included); make the run smaller or give it more memory")


def _device(path: Path) -> int:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return os.stat(path).st_dev


def volume_problems(out_dir: Path, out_bytes: int, out_listing: str, tmp_dir: Path, tmp_bytes: int,
                    tmp_listing: str) -> dict[str, UserInputError | None]:
    """For OUT_DIR (staged products) and TMPDIR (everything made): why it cannot hold its products, or None.
    Each must be a writable directory holding its products, their sum when they share one filesystem (the MS
    and its staged tar exist at once; the problem is then OUT_DIR's). The listings name the products."""
    problems: dict[str, UserInputError | None] = {"OUT_DIR": None, "TMPDIR": None}
    for setting, directory_path in (("OUT_DIR", out_dir), ("TMPDIR", tmp_dir)):
        existing = Path(os.path.abspath(directory_path))
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            problems[setting] = UserInputError(setting, f"{existing} is not a writable directory; mount a writable "
                                               "volume there")
    if any(problems.values()):
        return problems
    if _device(out_dir) == _device(tmp_dir):
        need, free = out_bytes + tmp_bytes, free_bytes(out_dir)
        if need and free < need:
            problems["OUT_DIR"] = UserInputError(
                "OUT_DIR", f"{out_dir} has {human(free)} free but {out_listing} need about {human(need)} together with "
                f"{tmp_listing} made in TMPDIR ({tmp_dir}, the same filesystem); enlarge the volume, put TMPDIR on "
                "another one, or shorten the run")
        return problems
    for setting, where, need, listing in (("OUT_DIR", out_dir, out_bytes, out_listing),
                                          ("TMPDIR", tmp_dir, tmp_bytes, tmp_listing)):
        free = free_bytes(where)
        if need and free < need:
            problems[setting] = UserInputError(setting, f"{where} has {human(free)} free but {listing} need about "
                                               f"{human(need)}; enlarge the volume or shorten the run")
    return problems


def check_volumes(out_dir: Path, out_bytes: int, out_listing: str, tmp_dir: Path, tmp_bytes: int, tmp_listing: str) -> None:
    """Refuse a run whose volumes cannot hold its products (see volume_problems): the first problem, OUT_DIR's first."""
    for problem in volume_problems(out_dir, out_bytes, out_listing, tmp_dir, tmp_bytes, tmp_listing).values():
        if problem is not None:
            raise problem


def _in_range(option: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        raise UserInputError(option, f"{value} is not a finite number in {'(' if low_open else '['}{low:g}, {high:g}]")


def check_image_options(args: Namespace) -> None:
    """Validate `srcnet-sim image` options before the MS is read: each error names its option."""
    if args.npixel < MIN_NPIXEL or args.npixel % 2:
        raise UserInputError("--npixel", f"{args.npixel} must be even and at least {MIN_NPIXEL}")
    _in_range("--cellsize-arcsec", args.cellsize_arcsec, 0.0, 3600.0 * 180.0, low_open=True)
    check_horizon("--cellsize-arcsec", args.npixel, math.radians(args.cellsize_arcsec / 3600.0))
    check_imaging_memory("--npixel", args.npixel)
    _in_range("--robust", args.robust, -2.0, 2.0)
    if args.niter < 0:
        raise UserInputError("--niter", f"{args.niter} must be >= 0 (0: dirty image only)")
    _in_range("--gain", args.gain, 0.0, 1.0, low_open=True)
    _in_range("--mgain", args.mgain, 0.0, 1.0, low_open=True)
    _in_range("--auto-threshold", args.auto_threshold, 0.0, math.inf)
    _in_range("--threshold", args.threshold, 0.0, math.inf)
    _in_range("--multiscale-bias", args.multiscale_bias, 0.0, 1.0, low_open=True)
    if args.multiscale_scales:
        try:
            scales = [float(v) for v in args.multiscale_scales.split(",")]
        except ValueError:
            scales = [math.nan]
        if not all(math.isfinite(v) and 0.0 <= v <= args.npixel for v in scales):
            raise UserInputError("--multiscale-scales", f"{args.multiscale_scales!r} is not a comma-separated list of "
                                 f"pixel sizes in 0..{args.npixel}")
    out_dir = Path(args.out_dir) if args.out_dir else Path.cwd()
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserInputError("--out-dir", f"{out_dir} is not a writable directory")
    ms = directory(Path(args.ms), "MS", "MeasurementSet")
    if os.path.lexists(ms / "table.dat"):
        regular_file(ms / "table.dat", "MS", "MeasurementSet table")
    name = args.name if args.name is not None else ms.name.removesuffix(".ms")
    if not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise UserInputError("--name", f"{name!r} is not a file name prefix: printable characters, no '/'")
    kinds = ("dirty", "cleaned", "residual", "model", "psf")
    naming.check_path_lengths(out_dir, [f"{name}-{kind}.fits" for kind in kinds], "--out-dir", name_setting="--name")
