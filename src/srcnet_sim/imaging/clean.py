"""Cotton-Schwab deconvolution: exact major cycles (degrid, subtract, regrid) around Clark minor cycles.

The minor cycle (numba) works on the pixels above its stopping level only (Clark's active set)
and subtracts the PSF from them; the major cycle then recomputes the whole residual from the
visibilities, which corrects what the minor cycle approximated. Cleaning ends after the major
cycle that follows a minor cycle run down to the final threshold (as in WSClean), when niter is
reached, or after max_major cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from srcnet_sim.imaging.multiscale import default_scales, multiscale_minor_cycle

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class CleanParameters:
    """gain: minor-loop gain; mgain: fraction of the peak cleaned per major cycle; niter: minor
    iterations in all; auto_threshold: stop at this many robust sigmas of the residual;
    threshold_jy: absolute stop (Jy/beam); max_major: major cycles at most; multiscale: clean with
    tapered-paraboloid components of several scales (diameters in pixels; None derives them from the
    beam) with the scale bias of Cornwell (2008), instead of point components."""

    gain: float = 0.1
    mgain: float = 0.8
    niter: int = 50_000
    auto_threshold: float = 3.0
    threshold_jy: float = 0.0
    max_major: int = 20
    multiscale: bool = False
    multiscale_scales_px: tuple[float, ...] | None = None
    multiscale_bias: float = 0.6


@dataclass(frozen=True)
class CleanResult:
    """model: (n, n) component fluxes (Jy/pixel); residual: (n, n) Jy/beam; counts and last threshold."""

    model: np.ndarray
    residual: np.ndarray
    iterations: int
    major_cycles: int
    threshold_jy: float


@numba.njit(cache=True, nogil=True)  # cube planes clean in parallel threads
def clark_minor_cycle(residual, psf, model, gain, stop, max_iter):  # pragma: no cover - compiled
    """Clean pixels of `residual` above `stop` until the peak falls below it or `max_iter` is reached.

    residual, model: (n, n) float32 [y, x]; psf: (m, m) with its peak at (m/2, m/2); model is
    updated in place. PSF offsets beyond the PSF image are skipped (the major cycle corrects them).
    Returns the number of iterations done.
    """
    n = residual.shape[0]
    half = psf.shape[0] // 2
    count = 0
    for y in range(n):
        for x in range(n):
            if abs(residual[y, x]) >= stop:
                count += 1
    ys = np.empty(count, dtype=np.int64)
    xs = np.empty(count, dtype=np.int64)
    values = np.empty(count, dtype=np.float64)
    i = 0
    for y in range(n):
        for x in range(n):
            if abs(residual[y, x]) >= stop:
                ys[i], xs[i], values[i] = y, x, residual[y, x]
                i += 1
    done = 0
    while done < max_iter and count > 0:
        best = 0
        for i in range(count):
            if abs(values[i]) > abs(values[best]):
                best = i
        peak = values[best]
        if abs(peak) < stop:
            break
        component = gain * peak
        yb, xb = ys[best], xs[best]
        model[yb, xb] += component
        for i in range(count):
            dy = ys[i] - yb + half
            dx = xs[i] - xb + half
            if 0 <= dy < psf.shape[0] and 0 <= dx < psf.shape[1]:
                values[i] -= component * psf[dy, dx]
        done += 1
    return done


def robust_sigma(image: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the noise rms of a mostly empty image."""
    return float(MAD_TO_SIGMA * np.median(np.abs(image - np.median(image))))


def cotton_schwab(dirty: np.ndarray, psf: np.ndarray, residual_of: Callable[[np.ndarray], np.ndarray],
                  params: CleanParameters, beam_px: float = 2.0) -> CleanResult:
    """Deconvolve.

    Args:
        dirty: (n, n) dirty image, Jy/beam (PSF peak 1).
        psf: (m, m) PSF, peak 1 at its centre.
        residual_of: model (n, n) -> residual image (dirty image of data minus degridded model).
        params: stopping rules and gains.
        beam_px: restoring-beam FWHM in pixels (sets the default multi-scale scales).
    """
    model = np.zeros_like(dirty, dtype=np.float32)
    residual = dirty
    iterations = major = 0
    threshold = params.threshold_jy
    psf32 = np.ascontiguousarray(psf, dtype=np.float32)
    while major < params.max_major and iterations < params.niter:
        threshold = max(params.threshold_jy, params.auto_threshold * robust_sigma(residual))
        peak = float(np.abs(residual).max())
        if peak <= threshold:
            break
        stop = max(threshold, (1.0 - params.mgain) * peak)
        if params.multiscale:
            scales = list(params.multiscale_scales_px or default_scales(beam_px, dirty.shape[0]))
            done = multiscale_minor_cycle(residual, psf32, model, scales, params.gain, stop, params.niter - iterations,
                                          params.multiscale_bias)
        else:
            done = clark_minor_cycle(np.ascontiguousarray(residual, dtype=np.float32), psf32, model, params.gain, stop,
                                     params.niter - iterations)
        iterations += done
        major += 1
        residual = residual_of(model)
        if done == 0 or stop <= threshold:
            # The minor cycle cleaned down to the final threshold: done, as WSClean stops there too.
            break
    return CleanResult(model=model, residual=residual, iterations=iterations, major_cycles=major, threshold_jy=threshold)
