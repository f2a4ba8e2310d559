"""Multi-scale minor cycle (Cornwell 2008): components are tapered paraboloids of several sizes.

Each scale s has a kernel k_s (a delta for scale 0); the residual is smoothed by every kernel,
and the PSF by every pair of kernels. An iteration picks the scale and pixel with the largest
bias-weighted smoothed residual, adds gain x that amplitude of k_s to the model, and subtracts the
matching smoothed PSFs from every smoothed residual, within a window around the pixel (the
major cycle corrects the rest).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

DEFAULT_SCALE_BIAS = 0.6
MAX_SCALES = 5


def default_scales(beam_px: float, npix: int) -> list[float]:
    """Scale diameters in pixels: 0, then 2, 4, 8, ... beam widths while smaller than npix / 8."""
    scales = [0.0]
    size = 2.0 * beam_px
    while size < npix / 8 and len(scales) < MAX_SCALES:
        scales.append(size)
        size *= 2.0
    return scales


def scale_kernel(diameter_px: float) -> np.ndarray:
    """Unit-sum tapered paraboloid of the given diameter (a 1x1 delta for 0)."""
    if diameter_px <= 0:
        return np.ones((1, 1))
    radius = diameter_px / 2.0
    h = int(np.ceil(radius))
    y, x = np.mgrid[-h : h + 1, -h : h + 1]
    r2 = (x**2 + y**2) / radius**2
    kernel = np.where(r2 < 1.0, 1.0 - r2, 0.0)
    return kernel / kernel.sum()


def multiscale_minor_cycle(residual: np.ndarray, psf: np.ndarray, model: np.ndarray, scales_px: list[float],
                           gain: float, stop: float, max_iter: int, bias: float = DEFAULT_SCALE_BIAS) -> int:
    """Clean `residual` (n, n) with `psf` (n, n, peak at n/2) until the peak falls below `stop`.

    The stopping test uses the scale-0 (unsmoothed) residual, so the thresholds mean what they
    mean for point-source cleaning. `model` is updated in place. Returns the iterations done.
    """
    n = residual.shape[0]
    kernels = [scale_kernel(s) for s in scales_px]
    smoothed = [fftconvolve(residual, k, mode="same") if k.size > 1 else residual.astype(np.float64) for k in kernels]
    n_scales = len(kernels)
    cross = [[None] * n_scales for _ in range(n_scales)]
    for s in range(n_scales):
        for t in range(s, n_scales):
            p = psf.astype(np.float64)
            for k in (kernels[s], kernels[t]):
                if k.size > 1:
                    p = fftconvolve(p, k, mode="same")
            cross[s][t] = cross[t][s] = p
    centre = n // 2
    peaks = [cross[s][s][centre, centre] for s in range(n_scales)]
    # Larger scales are damped: bias^(log2 of the scale relative to the first non-zero scale).
    weights = [1.0] + [bias ** (1 + np.log2(scales_px[i] / scales_px[1])) for i in range(1, n_scales)]
    largest = max(k.shape[0] for k in kernels)
    half = min(centre, max(32, 2 * largest + 16))
    done = 0
    while done < max_iter:
        if np.abs(smoothed[0]).max() < stop:
            break
        best, best_value, best_pos = 0, 0.0, (0, 0)
        for s in range(n_scales):
            pos = np.unravel_index(np.argmax(np.abs(smoothed[s])), smoothed[s].shape)
            value = smoothed[s][pos] / peaks[s]
            if abs(value) * weights[s] > abs(best_value) * weights[best]:
                best, best_value, best_pos = s, value, pos
        amplitude = gain * best_value
        y, x = best_pos
        ky = kernels[best].shape[0] // 2
        y0, y1, x0, x1 = max(y - ky, 0), min(y + ky + 1, n), max(x - ky, 0), min(x + ky + 1, n)
        model[y0:y1, x0:x1] += amplitude * kernels[best][y0 - y + ky : y1 - y + ky, x0 - x + ky : x1 - x + ky]
        wy0, wy1, wx0, wx1 = max(y - half, 0), min(y + half, n), max(x - half, 0), min(x + half, n)
        for t in range(n_scales):
            p = cross[best][t]
            smoothed[t][wy0:wy1, wx0:wx1] -= amplitude * p[wy0 - y + centre : wy1 - y + centre, wx0 - x + centre : wx1 - x + centre]
        done += 1
    return done
