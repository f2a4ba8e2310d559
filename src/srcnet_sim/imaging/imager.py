"""Dirty and cleaned MFS Stokes I images of a set of visibilities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.beam import Beam, fit_beam, restore
from srcnet_sim.imaging.clean import CleanParameters, CleanResult, cotton_schwab
from srcnet_sim.imaging.gridding import DEFAULT_EPSILON, degrid, grid
from srcnet_sim.imaging.msdata import Visibilities
from srcnet_sim.imaging.weighting import WeightGrid, apply_weights, on_grid
from srcnet_sim.fs.space import available_memory_bytes
from srcnet_sim.sizing import IMAGE_WORKING_BYTES_PER_PIXEL

MIN_NPIX = 32


class Source(Protocol):
    """What imaging reads: visibilities in memory (imaging.msdata.Visibilities) or on disk, an MSv2
    (imaging.msdata.MeasurementSetSource) or an MSv4 (imaging.msv4data.ProcessingSetSource), chunk by chunk."""

    freq_hz: np.ndarray  # (n_channels,) Hz
    channel_width_hz: np.ndarray  # (n_channels,) Hz
    phase_centre_rad: tuple[float, float]  # (RA, Dec) rad
    time_range_s: tuple[float, float]  # MJD seconds UTC
    telescope_name: str
    max_uvw_wavelengths: float  # the largest |uvw| of the unflagged samples at the highest frequency, wavelengths
    longest_baseline_wavelengths: float  # the largest sqrt(u^2 + v^2), likewise

    def chunks(self) -> Iterator[Visibilities]:
        """The samples in chunks of rows, each a Visibilities in memory."""


class NoVisibilities(UserInputError):
    """Every sample is flagged or off the uv grid: there is nothing to image."""


@dataclass(frozen=True)
class ImagingParameters:
    """npix: pixels per side (even, >= 32); cell_rad: pixel size; weighting: uniform, natural or briggs;
    robust: Briggs robustness; epsilon: gridder accuracy; allow_uv_cut: image even when baselines fall
    outside the uv grid (they are then left out, as WSClean does); beam_fit: "wsclean" or "full"
    (see imaging.beam.BEAM_FITS); threads: the gridder's threads (None: every core; a cube's planes imaged in
    parallel take a share each)."""

    npix: int
    cell_rad: float
    weighting: str = "uniform"
    robust: float = 0.0
    epsilon: float = DEFAULT_EPSILON
    allow_uv_cut: bool = False
    beam_fit: str = "wsclean"
    threads: int | None = None


@dataclass(frozen=True)
class Images:
    """Images [y, x] in FITS orientation (Jy/beam; model in Jy/pixel) and what describes them."""

    dirty: np.ndarray
    psf: np.ndarray
    beam: Beam
    clean: CleanResult | None
    restored: np.ndarray | None
    weight_sum: float
    n_visibilities: int
    sampled_weight_fraction: float
    expected_noise_jy: float = float("nan")  # thermal rms of the dirty image expected from the data weights


def check_parameters(source: Source, params: ImagingParameters) -> float:
    """Validate the grid against the data; return the fraction of the weight the grid samples."""
    if params.npix < MIN_NPIX or params.npix % 2:
        raise UserInputError("--npixel", f"{params.npix} must be even and at least {MIN_NPIX}")
    need = params.npix**2 * IMAGE_WORKING_BYTES_PER_PIXEL
    available = available_memory_bytes()  # container (cgroup) limit included
    if need > available:
        raise UserInputError("--npixel", f"a {params.npix}^2 image needs about {need / 2**30:.1f} GiB but "
                             f"{available / 2**30:.1f} GiB are available; use fewer pixels")
    longest = source.longest_baseline_wavelengths
    limit = 1.0 / (2.0 * params.cell_rad)  # |u| the grid holds, wavelengths
    if longest <= limit:
        return 1.0
    inside = total = 0.0
    for chunk in source.chunks():
        inside += float(chunk.weight[on_grid(chunk.uvw_m, chunk.freq_hz, params.npix, params.cell_rad)].sum())
        total += float(chunk.weight.sum())
    inside /= total
    if not params.allow_uv_cut:
        raise UserInputError(
            "--cellsize-arcsec",
            f"cell {np.degrees(params.cell_rad) * 3600:.3f} arcsec samples baselines up to {limit:.0f} wavelengths but the "
            f"longest is {longest:.0f} ({longest / limit:.2f}x longer; {100 * (1 - inside):.2g} % of the weight would be left out); "
            f"use a cell <= {np.degrees(1 / (2 * longest)) * 3600:.3f} arcsec or --allow-uv-cut",
        )
    return inside


def make_images(source: Source, params: ImagingParameters, clean: CleanParameters | None) -> Images:
    """Dirty image and PSF (PSF peak 1, Jy/beam), fitted beam, and with `clean` the deconvolution.

    Every image is divided by the sum of the imaging weights of the samples on the uv grid (those
    off it get weight 0 under every weighting), so a point source of S Jy on a pixel centre reads
    S Jy/beam in the dirty image whatever the weighting and cell.

    `source` gives the data a chunk of rows at a time (one chunk for data held in memory): gridding is
    linear, so every image is a sum over chunks, and memory does not grow with the observation.
    """
    sampled = check_parameters(source, params)
    grid_w = WeightGrid.empty(params.npix, params.cell_rad)
    if params.weighting != "natural":
        for chunk in source.chunks():
            grid_w.add(chunk.uvw_m, chunk.freq_hz, chunk.weight)

    def weights_of(chunk: Visibilities) -> np.ndarray:
        return apply_weights(grid_w, chunk.uvw_m, chunk.freq_hz, chunk.weight, params.weighting, params.robust)

    def image(chunk: Visibilities, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return grid(chunk.uvw_m, chunk.freq_hz, values, weights, params.npix, params.cell_rad, params.epsilon,
                    params.threads)

    dirty = np.zeros((params.npix, params.npix), dtype=np.float64)
    psf = np.zeros_like(dirty)
    weight_sum, n_vis, noise_variance = 0.0, 0, 0.0
    for chunk in source.chunks():
        weights = weights_of(chunk)
        weight_sum += float(weights.sum())
        noise_variance += _noise_variance(weights, chunk.weight)
        n_vis += int(np.count_nonzero(weights))
        dirty += image(chunk, chunk.vis, weights)
        psf += image(chunk, np.ones_like(chunk.vis), weights)
    if weight_sum <= 0:
        raise NoVisibilities("MS", "no visibility falls on the image's uv grid")
    dirty = (dirty / weight_sum).astype(np.float32)
    psf = (psf / weight_sum).astype(np.float32)
    beam = fit_beam(psf, params.cell_rad, 1.0 / source.max_uvw_wavelengths, params.beam_fit)
    result = restored = None
    if clean is not None and clean.niter > 0:
        def residual_of(model: np.ndarray) -> np.ndarray:
            total = np.zeros((params.npix, params.npix), dtype=np.float64)
            for chunk in source.chunks():
                weights = weights_of(chunk)
                model_vis = degrid(chunk.uvw_m, chunk.freq_hz, model, params.cell_rad, params.epsilon, weights > 0,
                                   params.threads)
                total += image(chunk, chunk.vis - model_vis, weights)
            return (total / weight_sum).astype(np.float32)

        result = cotton_schwab(dirty, psf, residual_of, clean, beam_px=beam.major_rad / params.cell_rad)
        restored = restore(result.model, result.residual, beam, params.cell_rad)
    return Images(dirty=dirty, psf=psf, beam=beam, clean=result, restored=restored, weight_sum=weight_sum,
                  n_visibilities=n_vis, sampled_weight_fraction=sampled,
                  expected_noise_jy=float(np.sqrt(noise_variance) / weight_sum))


def _noise_variance(imaging_weight: np.ndarray, data_weight: np.ndarray) -> float:
    """sum of w_i^2 sigma_i^2 over the samples of a chunk, sigma_i^2 = 1 / data weight (variance of Re I).

    A pixel of the dirty image is sum_i w_i Re(V_i e^(i phi_i)) / sum_i w_i; with independent noise of
    variance sigma_i^2 in the real and imaginary parts of each sample, its variance is
    sum_i w_i^2 sigma_i^2 / (sum_i w_i)^2, whatever the weighting (natural: 1 / sum_i sigma_i^-2).
    """
    used = (imaging_weight > 0) & (data_weight > 0)
    return float(np.sum(np.square(imaging_weight[used], dtype=np.float64) / data_weight[used]))
