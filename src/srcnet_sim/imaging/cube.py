"""Image cubes of a MeasurementSet: a dirty (and cleaned) Stokes I plane per channel group, planes imaged in
parallel and streamed to FITS (imaging.fits.CubeFile) in order, never the whole cube in memory.

Each plane is an image of its group's channels made by imaging.imager.make_images -- its own weights, PSF,
fitted restoring beam and Cotton-Schwab clean -- as WSClean's -channels-out makes one image per output channel.
With a continuum model (CONTSUB=on) the model's visibilities, degridded at each channel's own frequency, are
subtracted from the data before gridding, and each pixel's median over the planes is then subtracted from the
written cube: the uv-plane continuum subtraction of HI pipelines followed by their image-plane baseline (as
WALLABY's ccontsubtract and imcontsub). The baseline removes what the MFS model cannot hold right: a line's own
band average, which the MFS model holds and the uv step takes out of every plane, and clean's residual continuum.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.space import available_memory_bytes
from srcnet_sim.imaging.beam import Beam
from srcnet_sim.imaging.clean import CleanParameters
from srcnet_sim.imaging.fits import CubeFile, ImageDescription, SpectralAxis
from srcnet_sim.imaging.gridding import DEFAULT_EPSILON, core_count, degrid
from srcnet_sim.imaging.imager import ImagingParameters, NoVisibilities, make_images
from srcnet_sim.imaging.msdata import MeasurementSetSource, Visibilities
from srcnet_sim.imaging.reorder import ReorderedGroups
from srcnet_sim.imaging.sources import open_visibilities
from srcnet_sim.progress import Progress, logger
from srcnet_sim.sizing import CHUNK_SAMPLES, IMAGE_WORKING_BYTES_PER_PIXEL, STOKES_I_SAMPLE_BYTES


@dataclass(frozen=True)
class ContinuumModel:
    """A continuum model to subtract: (npix, npix) component fluxes, Jy per pixel [y, x] in FITS orientation (a
    cleaned MFS image's model), on a grid of cell_rad around the MS's phase centre."""

    model: np.ndarray
    cell_rad: float
    epsilon: float = DEFAULT_EPSILON


def spectral_axis(freq_hz: np.ndarray, width_hz: np.ndarray, groups: list[tuple[int, int]]) -> SpectralAxis:
    """The FREQ axis of planes made of `groups` of channels (centres freq_hz, widths width_hz, Hz); raises
    UserInputError("MS") when the channels are not evenly spaced (no linear axis describes them)."""
    centres = np.array([freq_hz[a:b].mean() for a, b in groups])
    widths = np.array([width_hz[a:b].sum() for a, b in groups])
    step = float(np.diff(centres).mean()) if len(groups) > 1 else float(widths[0])
    if len(groups) > 1 and not np.allclose(np.diff(centres), step, rtol=1e-6, atol=0):
        raise UserInputError("MS", "the channels are not evenly spaced: a cube's FREQ axis cannot describe them")
    return SpectralAxis(float(centres[0]), step, len(groups))


class ChannelSlice:
    """Channels [start, stop) of a MeasurementSet as an imaging source (imaging.imager.Source), less a continuum
    model's visibilities when one is given. Kept in memory after the first pass when it fits in `hold_samples`
    samples (rows x channels), else read again, a chunk of rows at a time, on every pass: from the MS, or with
    `read` (row, n) -> Visibilities from elsewhere (imaging.reorder: the same samples, reordered by group)."""

    def __init__(self, ms: MeasurementSetSource, channels: tuple[int, int], continuum: ContinuumModel | None = None,
                 threads: int | None = None, hold_samples: int = CHUNK_SAMPLES,
                 read: Callable[[int, int], Visibilities] | None = None) -> None:
        self.ms, self.channels, self.continuum, self.threads = ms, channels, continuum, threads
        self._read = read or (lambda row, n: ms.read_channels(row, n, channels))
        chosen = slice(*channels)
        self.freq_hz, self.channel_width_hz = ms.freq_hz[chosen], ms.channel_width_hz[chosen]
        self.phase_centre_rad, self.time_range_s, self.telescope_name = ms.phase_centre_rad, ms.time_range_s, ms.telescope_name
        scale = float(self.freq_hz.max() / ms.freq_hz.max())  # the MS's longest baselines, at this slice's top frequency
        self.longest_baseline_wavelengths = ms.longest_baseline_wavelengths * scale
        self.max_uvw_wavelengths = ms.max_uvw_wavelengths * scale
        self.rows_per_chunk = max(1, hold_samples // len(self.freq_hz))
        self._held: Visibilities | None = None

    def chunks(self) -> Iterator[Visibilities]:
        """The slice's Stokes I data (continuum subtracted), a chunk of rows at a time."""
        if self._held is not None:
            yield self._held
            return
        n_rows = self.ms.n_rows
        for row in range(0, n_rows, self.rows_per_chunk):
            n = min(self.rows_per_chunk, n_rows - row)
            chunk = self._read(row, n)
            if self.continuum is not None:
                chunk = self._subtracted(chunk)
            if n == n_rows:
                self._held = chunk
            yield chunk

    def _subtracted(self, chunk: Visibilities) -> Visibilities:
        c = self.continuum
        model_vis = degrid(chunk.uvw_m, chunk.freq_hz, c.model, c.cell_rad, c.epsilon, chunk.weight > 0, self.threads)
        return replace(chunk, vis=chunk.vis - model_vis)


@dataclass(frozen=True)
class Plane:
    """One imaged plane: dirty and (when cleaned) restored images (npix, npix) Jy/beam, the restoring beam, the
    clean's iterations (0 without), and whether all its data were flagged (the planes are then NaN, the beam
    the theoretical one, as no PSF exists)."""

    dirty: np.ndarray
    restored: np.ndarray | None
    beam: Beam
    iterations: int
    blank: bool = False


SCAN_SAMPLES = CHUNK_SAMPLES // 8  # samples (rows x all channels) a cube's first scan of the MS reads at once


def open_measurement_set(path: Path) -> MeasurementSetSource:
    """The MS to image into a cube: its first scan (time range, longest baselines) reads SCAN_SAMPLES at a time, as
    the planes read their own channels afterwards and nothing of the scan is kept."""
    return open_visibilities(path, chunk_samples=SCAN_SAMPLES)


def cube_description(ms: MeasurementSetSource, cell_rad: float, object_name: str) -> ImageDescription:
    """The header facts of a cube of `ms` (phase centre, cell, times, telescope, OBJECT); its band and beams are the
    planes' own (imaging.fits.CubeFile)."""
    return ImageDescription(phase_centre_rad=ms.phase_centre_rad, cell_rad=cell_rad, freq_low_hz=0.0, freq_high_hz=0.0,
                            start_time_s=ms.time_range_s[0], end_time_s=ms.time_range_s[1], telescope=ms.telescope_name,
                            beam=Beam(0.0, 0.0, 0.0), object_name=object_name)


def plane_workers(npix: int, n_planes: int) -> int:
    """Planes imaged at once: one per core, at most what half the available memory holds (each plane needs
    npix^2 x IMAGE_WORKING_BYTES_PER_PIXEL and its share of CHUNK_SAMPLES held samples), at least one."""
    cores = min(core_count(), n_planes)
    per_plane = npix * npix * IMAGE_WORKING_BYTES_PER_PIXEL + CHUNK_SAMPLES // cores * STOKES_I_SAMPLE_BYTES
    return max(1, min(cores, available_memory_bytes() // 2 // per_plane))


def image_cube(ms: MeasurementSetSource, params: ImagingParameters, clean: CleanParameters | None,
               groups: list[tuple[int, int]], paths: dict[str, Path], desc: ImageDescription,
               continuum: ContinuumModel | None = None, workers: int | None = None,
               reorder: bool = True, scratch: Path | None = None) -> dict[str, Path]:
    """Image each channel group of `ms` into a plane and write the cubes named in `paths` ("dirty", "cleaned").

    With more than one group and `reorder`, the MS's Stokes I is first reordered by group into files in `scratch`
    (default TMPDIR; imaging.reorder: one pass over the MS instead of one or more per plane; the planes are the
    same bytes either way). Planes are imaged `workers` at a time (default: plane_workers), each with a share of
    the cores, and written in order as they finish; at most workers + 1 planes are in memory. With `continuum`,
    the cube then gets the image-plane baseline (imaging.fits.subtract_spectral_median). Without `clean` only
    "dirty" can be made. Returns the FITS paths written, by kind.
    """
    if "cleaned" in paths and clean is None:
        raise ValueError("a cleaned cube needs clean parameters")
    workers = workers or plane_workers(params.npix, len(groups))
    hold = CHUNK_SAMPLES // workers
    plane_params = replace(params, threads=max(1, (params.threads or core_count()) // workers))
    spectral = spectral_axis(ms.freq_hz, ms.channel_width_hz, groups)
    keywords = {"WSCWEIGH": params.weighting, "SSCONSUB": (continuum is not None, "continuum model subtracted in uv")}
    reordered = (ReorderedGroups(ms, groups, Path(scratch or tempfile.gettempdir()))
                 if reorder and len(groups) > 1 else None)
    files = {kind: CubeFile(path, desc, params.npix, spectral, extra=keywords) for kind, path in paths.items()}
    logger.info("cube: %d planes of %d channel%s, %d x %d pixels, %d at a time x %d threads%s", len(groups),
                groups[0][1] - groups[0][0], "s" if groups[0][1] - groups[0][0] > 1 else "", params.npix, params.npix,
                workers, plane_params.threads, ", continuum subtracted" if continuum is not None else "")
    progress = Progress(len(groups), len(groups), "cube")

    def image_plane(index: int) -> Plane:
        channels = groups[index]
        read = (lambda row, n: reordered.read(index, row, n)) if reordered is not None else None
        source = ChannelSlice(ms, channels, continuum, plane_params.threads, hold, read)
        try:
            images = make_images(source, plane_params, clean)
        except NoVisibilities:
            blank = np.full((params.npix, params.npix), np.nan, dtype=np.float32)
            theoretical = 1.0 / source.max_uvw_wavelengths
            return Plane(blank, blank, Beam(theoretical, theoretical, 0.0), 0, blank=True)
        iterations = images.clean.iterations if images.clean is not None else 0
        return Plane(images.dirty, images.restored, images.beam, iterations)

    totals = {"iterations": 0, "blank": 0}

    def write(plane: Plane) -> None:
        for kind, cube in files.items():
            cube.write(plane.dirty if kind == "dirty" else plane.restored, plane.beam)
        totals["iterations"] += plane.iterations
        totals["blank"] += plane.blank
        progress.advance(1)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cube-plane")
    try:
        pending: deque[Future[Plane]] = deque()
        for index in range(len(groups)):
            pending.append(pool.submit(image_plane, index))
            if len(pending) > workers:  # at most workers planes imaging and one waiting to be written
                write(pending.popleft().result())
        while pending:
            write(pending.popleft().result())
        written = {kind: cube.close(subtract_median=continuum is not None) for kind, cube in files.items()}
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for cube in files.values():
            cube.discard()
        raise
    finally:
        if reordered is not None:
            reordered.close()
    pool.shutdown()
    iterations, blanks = totals["iterations"], totals["blank"]
    logger.info("cube: %d planes written%s%s", len(groups), f", {iterations} clean iterations" if clean else "",
                f", {blanks} all flagged (NaN)" if blanks else "")
    return written
