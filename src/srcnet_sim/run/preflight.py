"""Checks of this machine before any work: memory (container limits included) and the volumes' free space.

Each check names the setting to change; run.plan.plan() and preflight() call them, so that a bad value
costs the start-up time, not the simulation. The checks of settings against data sit beside that data
(products.sidecar_probe, imaging.grid_checks; the image command's options in cli).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil

from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.extents import shifts_extents
from srcnet_sim.fs.filecopy import shares_blocks
from srcnet_sim.fs.space import available_memory_bytes, free_bytes
from srcnet_sim.run.plan import PRODUCTS, ZIPPED, Plan
from srcnet_sim.sizing import IMAGE_WORKING_BYTES_PER_PIXEL, PROCESS_BASELINE_BYTES, Estimate, human

# In sizing.estimate a time step holds n_chan x n_dish x n_src phasors (8 bytes) and n_chan x n_baselines x 4
# correlations of visibilities and sums (32 bytes): the sources dominate above this ratio of the two counts.
SOURCE_TERM_RATIO = 16


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


def memory_problem(sizes: Estimate, images: bool, npix: int, synthetic_sky: bool) -> UserInputError | None:
    """Why the run's estimated peak memory exceeds what this machine (or its container) has available, or None.
    images: the run images npix x npix pixels; synthetic_sky: its sky is SYNTHETIC (the setting to name)."""
    need = max(sizes.simulate_peak_bytes, sizes.imaging_peak_bytes if images else 0)
    available = _memory_for_run()
    if need <= available:
        return None
    if images and sizes.imaging_peak_bytes >= sizes.simulate_peak_bytes:
        setting, what = "IMAGING_NPIXEL", f"imaging {npix}^2 pixels"
    elif sizes.n_sources * sizes.n_dishes >= SOURCE_TERM_RATIO * sizes.n_baselines:  # phasors dominate
        setting = "SYNTHETIC_SOURCES" if synthetic_sky else "SKY_MODEL"
        what = f"simulating {sizes.n_sources} sources x {sizes.n_dishes} dishes x {sizes.n_channels} channels"
    else:  # one time step's visibilities dominate
        setting = "FREQ_INC_HZ"
        what = f"simulating {sizes.n_channels} channels x {sizes.n_baselines} baselines per time step"
    return UserInputError(setting, f"{what} needs about {human(need)} of memory but {human(available)} is "
                          "available here (container limit included); make the run smaller or give it more memory")


def _existing(path: Path) -> Path:
    """`path`, or its nearest existing parent (a directory the run will create lies on that one's filesystem)."""
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def _device(path: Path) -> int:
    return os.stat(_existing(path)).st_dev


def volume_problems(out_dir: Path, out_bytes: int, out_listing: str, tmp_dir: Path, tmp_bytes: int,
                    tmp_listing: str, copied_bytes: int = 0, spent_bytes: int = 0) -> dict[str, UserInputError | None]:
    """For OUT_DIR (staged products) and TMPDIR (everything made): why it cannot hold its products, or None.
    Each must be a writable directory holding its products, their sum when they share one filesystem (the MS
    and its staged tar exist at once; the problem is then OUT_DIR's), less what staging takes without new space
    there: `copied_bytes` (the staged bytes that are copies of TMPDIR's files: tars and copies made with
    copy_file_range) when that filesystem shares blocks between files (fs.filecopy.shares_blocks: XFS with
    reflink, btrfs), else `spent_bytes` (the MS's DATA file, which becomes its tar: products.adopted_tar) when it
    shifts extents (fs.extents.shifts_extents: ext4, XFS). The listings name the products."""
    problems: dict[str, UserInputError | None] = {"OUT_DIR": None, "TMPDIR": None}
    for setting, directory_path in (("OUT_DIR", out_dir), ("TMPDIR", tmp_dir)):
        existing = _existing(directory_path)
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            problems[setting] = UserInputError(setting, f"{existing} is not a writable directory; mount a writable "
                                               "volume there")
    if any(problems.values()):
        return problems
    if _device(out_dir) == _device(tmp_dir):
        shared, how = 0, ""
        if copied_bytes and shares_blocks(_existing(tmp_dir)):
            shared, how = copied_bytes, ", whose copies share blocks"
        elif spent_bytes and shifts_extents(_existing(tmp_dir)):
            shared, how = spent_bytes, ", where the MS's DATA becomes its tar"
        need, free = out_bytes + tmp_bytes - shared, free_bytes(out_dir)
        if need and free < need:
            problems["OUT_DIR"] = UserInputError(
                "OUT_DIR", f"{out_dir} has {human(free)} free but {out_listing} need about {human(need)} together with "
                f"{tmp_listing} made in TMPDIR ({tmp_dir}, the same filesystem"
                f"{how}); enlarge the volume, put TMPDIR on another one, "
                "or shorten the run")
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


def preflight_problems(run_plan: Plan, ms_spent: bool = True) -> dict[str, UserInputError | None]:
    """Why this machine cannot run the plan, per resource ("memory", "OUT_DIR", "TMPDIR"), or None where it can:
    memory (container limit included), OUT_DIR and the temporary directory (space, their sum on one filesystem,
    writable). ms_spent: the staged MS's tar may be made around its DATA file (not with --notification, whose
    plugins read the MS after staging)."""
    scratch = Path(tempfile.gettempdir())
    volumes = volume_problems(
        run_plan.product_dir, sum(run_plan.product_bytes(p) for p in run_plan.products),
        ", ".join(run_plan.staged_name(p) for p in PRODUCTS if p in run_plan.products),
        scratch, run_plan.scratch_bytes(), ", ".join(run_plan.file_name(p) for p in run_plan.made)
        + (" and the cube imaging's reordered visibilities" if run_plan.cube_reorder_bytes else ""),
        copied_bytes=sum(run_plan.product_bytes(p) for p in run_plan.products if p not in ZIPPED),
        spent_bytes=run_plan.estimate.data_column_bytes if ms_spent and "vis" in run_plan.products else 0)
    return {"memory": memory_problem(run_plan.estimate, "dirty" in run_plan.made, run_plan.imaging.npix,
                                     run_plan.synthetic_sky),
            **volumes}


def preflight(run_plan: Plan, ms_spent: bool = True) -> None:
    """Refuse to start, with the numbers, when this machine cannot run the plan (see preflight_problems)."""
    for problem in preflight_problems(run_plan, ms_spent).values():
        if problem is not None:
            raise problem
