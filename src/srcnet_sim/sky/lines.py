"""Spectral lines of sources: profiles, their support, and the flux each channel receives.

A line is given by its integrated flux F (Jy Hz), observed centre frequency nu0 (Hz), full width at 20 % of the
peak W20 (Hz, observed frame) and a velocity dispersion sigma (Hz) that picks the profile:
  - sigma = 0: a Gaussian of that W20 (W20 = 2 sqrt(2 ln 5) s = 3.5885 s);
  - sigma > 0: a rotating disc, the double-horned profile of a ring of projected rotation V (Hz) whose gas moves
    with dispersion sigma: p(nu) = < N(nu - nu0 - V sin(theta); sigma) >_theta, V chosen so that its W20 is the one
    given (a Gaussian of W20 where W20 is too narrow for any V). Its cumulative distribution is the mean over theta
    of normal CDFs, evaluated with DISC_PHASES phases (a periodic trapezoid rule: exact to far below float64
    rounding for V / sigma < 100).
Each profile is cut at LINE_SUPPORT_SIGMA dispersions beyond its last feature (a fraction 2e-9 of a Gaussian's flux)
and renormalised, so the flux of every line is exactly F and a channel outside its support receives exactly 0: a
channel's cost does not depend on the lines elsewhere in the band.

A channel receives the profile integrated over its width, F (C(hi) - C(lo)) / width, never the value at its centre,
so a line narrower than a channel keeps its integrated flux.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import ndtr

W20_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(5.0))  # a Gaussian's full width at 20 % of its peak, in sigmas
LINE_SUPPORT_SIGMA = 6.0
DISC_PHASES = 128
DISC_CHUNK_VALUES = 2**22
_RATIOS = np.concatenate([np.linspace(0.0, 5.0, 41), np.geomspace(5.2, 400.0, 80)])  # V / sigma of the W20 table


def _disc_cdf(x: np.ndarray, v: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """CDF of a unit-flux disc profile centred on 0 at offsets x (..., n_src), for (n_src,) V and sigma (Hz)."""
    theta = 2.0 * np.pi * (np.arange(DISC_PHASES) + 0.5) / DISC_PHASES
    shift = v[:, None] * np.sin(theta)[None, :]  # (n_src, n_phase)
    return ndtr((x[..., None] - shift) / sigma[:, None]).mean(axis=-1)


@cache
def _w20_of_ratio() -> np.ndarray:
    """W20 / sigma of a disc profile for each V / sigma of _RATIOS (monotonic), from its sampled profile (once)."""
    widths = np.empty(len(_RATIOS))
    theta = 2.0 * np.pi * (np.arange(DISC_PHASES) + 0.5) / DISC_PHASES
    for i, ratio in enumerate(_RATIOS):
        x = np.linspace(0.0, ratio + 6.0, 4001)
        profile = np.exp(-0.5 * (x[:, None] - ratio * np.sin(theta)[None, :]) ** 2).mean(axis=1)
        above = np.flatnonzero(profile >= 0.2 * profile.max())[-1]
        # linear interpolation of the 20 % crossing between the last sample above and the next
        x0, x1, p0, p1 = x[above], x[above + 1], profile[above], profile[above + 1]
        widths[i] = 2.0 * (x0 + (0.2 * profile.max() - p0) * (x1 - x0) / (p1 - p0))
    return widths


def disc_rotation_hz(w20_hz: np.ndarray, sigma_hz: np.ndarray) -> np.ndarray:
    """(n_src,) projected rotation V (Hz) of the disc profile whose W20 is w20_hz for dispersion sigma_hz (> 0);
    0 where W20 <= 3.5885 sigma (no disc that narrow: such lines are drawn as Gaussians)."""
    ratio = np.interp(np.asarray(w20_hz) / np.asarray(sigma_hz), _w20_of_ratio(), _RATIOS, left=0.0, right=np.nan)
    return ratio * np.asarray(sigma_hz)


def disc_w20_hz(v_hz: np.ndarray, sigma_hz: np.ndarray) -> np.ndarray:
    """(n_src,) W20 (Hz) of the disc profile of projected rotation v_hz and dispersion sigma_hz (> 0), Hz; the
    inverse of disc_rotation_hz (V / sigma up to 400)."""
    sigma_hz = np.asarray(sigma_hz, dtype=np.float64)
    return sigma_hz * np.interp(np.asarray(v_hz) / sigma_hz, _RATIOS, _w20_of_ratio())


def _shapes(w20_hz: np.ndarray, sigma_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_disc, V, s): the profile of each line, V its rotation (0 for Gaussians) and s its Gaussian sigma (Hz)."""
    w20_hz, sigma_hz = np.asarray(w20_hz, dtype=np.float64), np.asarray(sigma_hz, dtype=np.float64)
    is_disc = (sigma_hz > 0) & (w20_hz > W20_PER_SIGMA * sigma_hz)
    v = np.where(is_disc, disc_rotation_hz(w20_hz, np.where(sigma_hz > 0, sigma_hz, 1.0)), 0.0)
    s = np.where(is_disc, sigma_hz, w20_hz / W20_PER_SIGMA)
    return is_disc, v, s


def line_support_hz(centre_hz: np.ndarray, w20_hz: np.ndarray, sigma_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) (n_src,) frequencies (Hz) outside which each line's profile is exactly 0."""
    _, v, s = _shapes(w20_hz, sigma_hz)
    half = v + LINE_SUPPORT_SIGMA * s
    return np.asarray(centre_hz) - half, np.asarray(centre_hz) + half


def channel_line_flux(flux_jy_hz: np.ndarray, centre_hz: np.ndarray, w20_hz: np.ndarray, sigma_hz: np.ndarray,
                      freq_hz: np.ndarray, width_hz: float) -> np.ndarray:
    """(n_chan, n_src) mean flux density (Jy) of each line over each channel [f - width/2, f + width/2].

    Args:
        flux_jy_hz, centre_hz, w20_hz, sigma_hz: (n_src,) the lines (F = 0: no line).
        freq_hz: (n_chan,) channel centres; width_hz: their width (Hz).
    """
    flux = np.asarray(flux_jy_hz, dtype=np.float64)
    out = np.zeros((len(freq_hz), len(flux)))
    lo, hi = line_support_hz(centre_hz, w20_hz, sigma_hz)
    edges = np.concatenate([np.asarray(freq_hz) - width_hz / 2, [np.asarray(freq_hz)[-1] + width_hz / 2]])
    touched = np.flatnonzero((flux != 0) & (hi > edges[0]) & (lo < edges[-1]))
    if touched.size == 0:
        return out
    is_disc, v, s = _shapes(np.asarray(w20_hz)[touched], np.asarray(sigma_hz)[touched])
    half = v + LINE_SUPPORT_SIGMA * s
    x = np.clip(edges[:, None] - np.asarray(centre_hz)[touched][None, :], -half, half)  # (n_edge, n_touched)
    cdf = ndtr(x / s)
    total = ndtr(half / s) - ndtr(-half / s)
    disc = np.flatnonzero(is_disc)
    chunk = max(1, DISC_CHUNK_VALUES // (len(edges) * DISC_PHASES))  # bounded memory: 32 MB of phases at a time
    for start in range(0, disc.size, chunk):
        part = disc[start:start + chunk]
        cdf[:, part] = _disc_cdf(x[:, part], v[part], s[part])
        total[part] = (_disc_cdf(half[part][None, :], v[part], s[part]) - _disc_cdf(-half[part][None, :], v[part], s[part]))[0]
    out[:, touched] = flux[touched] * np.diff(cdf, axis=0) / (total * width_hz)
    return out
