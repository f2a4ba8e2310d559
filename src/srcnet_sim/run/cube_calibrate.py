"""The duration of a run's cube imaging, predicted from imaging one calibration plane of the run on this machine.

A plane's imaging time is about `fixed + per_sample x samples`: `fixed` the work on its npix^2 grid (FFTs of every
major cycle, the minor cycles, the beam fit, the restore), `per_sample` the gridding and degridding of each of its
visibility samples on each pass. Both are measured on one plane of the run itself: CALIBRATION_STEPS time steps,
spread over the observation, of the middle plane's first channel, simulated with the run's telescope, sky and
instrument (run.blocks.compute_block), its Stokes I imaged with the run's grid and clean (the seed's) twice -- as
it is, and with every sample repeated REPLICAS times (each the best of two timings). Repeated samples leave every image the same (each weighting
divides by the weight sum), so the clean does the same cycles and only the gridding grows: the difference is the
per-sample cost. The plane is imaged with the threads a plane gets in the run (imaging.cube.plane_workers planes
at once share the cores), so the cube takes planes x (fixed + per_sample x a plane's samples) / workers, plus
the one pass that reorders the MS's Stokes I by plane (imaging.reorder): the MS read and the reordered files
written, at the disk's measured sequential speed.

What this does not see: the clean's major cycles are those of the calibration plane, whose uv coverage (a few
time steps) and noise differ from a plane of the whole run; CONTSUB's degridding of the continuum model (one more
pass per major cycle) is not counted; the reordered files are assumed read from the page cache or as fast as
written.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CALIBRATION_STEPS = 4
REPLICAS = 4


@dataclass(frozen=True)
class CubePrediction:
    """Predicted seconds of a run's cube imaging and their parts: total_s = reorder_s + planes x plane_s / workers;
    fixed_s and per_sample_s the measured plane model (seconds, seconds per visibility sample); major_cycles
    what the calibration plane's clean did (0 for a dirty cube)."""

    total_s: float
    reorder_s: float
    plane_s: float
    planes: int
    workers: int
    threads: int
    fixed_s: float
    per_sample_s: float
    major_cycles: int


def calibration_visibilities(observation, channel: int, threads: int, replicas: int = 1):
    """Stokes I (imaging.msdata.Visibilities, one channel) of CALIBRATION_STEPS time steps of `observation` spread
    over its length, each sample repeated `replicas` times."""
    from srcnet_sim.imaging.msdata import Visibilities
    from srcnet_sim.run.blocks import Block, compute_block

    n_times = len(observation.times_s)
    steps = np.unique(np.linspace(0, n_times - 1, min(CALIBRATION_STEPS, n_times)).round().astype(int))
    blocks = [compute_block(observation, Block(0, int(t), int(t) + 1, channel, channel + 1), threads) for t in steps]
    uvw = np.concatenate([b.uvw_m.reshape(-1, 3) for b in blocks])
    vis = np.concatenate([(0.5 * (b.vis[..., 0, 0] + b.vis[..., 0, 3])).reshape(-1, 1) for b in blocks])
    once = Visibilities(uvw_m=uvw, freq_hz=observation.freq_hz[channel:channel + 1], vis=vis.astype(np.complex64),
                        weight=np.ones((len(uvw), 1), dtype=np.float32),
                        phase_centre_rad=(observation.ra_rad, observation.dec_rad), time_range_s=(0.0, 1.0),
                        telescope_name=observation.telescope.name,
                        channel_width_hz=np.full(1, observation.channel_width_hz))
    return repeated(once, replicas)


def repeated(visibilities, replicas: int):
    """`visibilities` (imaging.msdata.Visibilities) with every row repeated `replicas` times."""
    from dataclasses import replace

    if replicas == 1:
        return visibilities
    return replace(visibilities, **{name: np.tile(getattr(visibilities, name), (replicas, 1))
                                    for name in ("uvw_m", "vis", "weight")})


def predict_cube_imaging(run_plan, scratch: Path | None = None) -> CubePrediction:
    """The duration of run_plan's cube imaging (module docstring), measured here; run_plan.made holds a cube."""
    from dataclasses import replace as with_fields

    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.cube import plane_workers
    from srcnet_sim.imaging.gridding import core_count
    from srcnet_sim.imaging.imager import ImagingParameters, make_images
    from srcnet_sim.run.calibrate import disk_write_speed
    from srcnet_sim.run.stages import SEED_CLEAN

    grid, e = run_plan.imaging, run_plan.estimate
    obs = run_plan.observation if run_plan.observation.dish_uvw_m is not None else run_plan.observation.with_geometry()
    planes = list(grid.cube_planes)
    workers = plane_workers(grid.npix, len(planes))
    threads = max(1, core_count() // workers)
    params = ImagingParameters(npix=grid.npix, cell_rad=grid.cell_rad, allow_uv_cut=True, threads=threads)
    clean = CleanParameters(**SEED_CLEAN) if "cube" in run_plan.made else None
    channel = planes[len(planes) // 2][0]
    once = calibration_visibilities(obs, channel, threads)
    make_images(once, with_fields(params, npix=64), clean)  # warm-up: loads the compiled kernels

    def seconds(source) -> tuple[float, int]:
        """The best of two timings (a busy moment of the machine inflates one; the difference of two would be
        noise), and the major cycles."""
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            images = make_images(source, params, clean)
            best = min(best, time.perf_counter() - start)
        return best, images.clean.major_cycles if images.clean is not None else 0

    t_once, majors = seconds(once)
    t_repeated, _ = seconds(repeated(once, REPLICAS))
    n_once = once.vis.size
    per_sample = max(t_repeated - t_once, 0.0) / ((REPLICAS - 1) * n_once)
    fixed = max(t_once - per_sample * n_once, 0.0)
    samples = e.n_times * e.n_baselines * max(b - a for a, b in planes)
    plane_s = fixed + per_sample * samples
    reorder_s = 0.0
    if run_plan.cube_reorder_bytes:
        disk = disk_write_speed(Path(scratch or tempfile.gettempdir()))
        reorder_s = (e.ms_expected_bytes + run_plan.cube_reorder_bytes) / disk
    total = reorder_s + len(planes) * plane_s / workers
    return CubePrediction(total, reorder_s, plane_s, len(planes), workers, threads, fixed, per_sample, majors)
