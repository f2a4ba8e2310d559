"""Restoring beam: an elliptical Gaussian fitted to the PSF main lobe (WSClean's method), and restoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
FIT_BOX_BEAMS = 10.0  # fit box side in units of the estimated FWHM, as WSClean
# "wsclean": WSClean 3.1's fit. Its fitter (schaapcommon GaussianFitter) computes pixel offsets as
# size_t - int, so left of and below the centre the offsets wrap to huge values and the model is 0
# there: in effect it fits only the quadrant x >= 0, y >= 0 (for a point-symmetric PSF, quadrants
# 1 and 3). Reproducing it keeps restored images comparable with the seed's WSClean products.
# "full": the least-squares fit over the whole box.
BEAM_FITS = ("wsclean", "full")


@dataclass(frozen=True)
class Beam:
    """Elliptical Gaussian: FWHM major/minor in radians, position angle east of north in [0, pi) radians."""

    major_rad: float
    minor_rad: float
    pa_rad: float

    def kernel(self, cell_rad: float, half_size: int | None = None) -> np.ndarray:
        """(2h+1, 2h+1) image of the beam with peak 1, [y, x] FITS orientation (x towards lower RA)."""
        sig_maj, sig_min = self.major_rad / FWHM_PER_SIGMA / cell_rad, self.minor_rad / FWHM_PER_SIGMA / cell_rad
        h = half_size if half_size is not None else int(np.ceil(5 * sig_maj))
        y, x = np.mgrid[-h : h + 1, -h : h + 1].astype(np.float64)
        return _gaussian(x, y, sig_maj, sig_min, self.pa_rad)


def _gaussian(x: np.ndarray, y: np.ndarray, sig_maj: float, sig_min: float, pa: float) -> np.ndarray:
    """Unit-peak Gaussian at pixel offsets (x towards lower RA, y north); PA east of north."""
    east = -x  # RA increases to the left of the image: east is -x
    along = east * np.sin(pa) + y * np.cos(pa)
    across = east * np.cos(pa) - y * np.sin(pa)
    return np.exp(-0.5 * ((along / sig_maj) ** 2 + (across / sig_min) ** 2))


def _fit_in_box(psf: np.ndarray, box: int, sigma0: float, mode: str) -> tuple[float, float, float]:
    """Fit (sigma_major, sigma_minor, pa) in pixels/radians over an even box [-box/2, box/2) around the centre.

    mode "wsclean" compares the model with the PSF only where x >= 0 and y >= 0 (see BEAM_FITS).
    """
    from scipy.optimize import leastsq

    n = psf.shape[0]
    start = (n - box) // 2
    cut = psf[start : start + box, start : start + box].astype(np.float64)
    y, x = np.mgrid[-(box // 2) : box - box // 2, -(box // 2) : box - box // 2].astype(np.float64)

    used = (x >= 0) & (y >= 0) if mode == "wsclean" else np.ones(cut.shape, dtype=bool)

    def residual(p: np.ndarray) -> np.ndarray:
        return (_gaussian(x[used], y[used], abs(p[0]), abs(p[1]), p[2]) - cut[used]).ravel()

    # MINPACK's lmdif through leastsq: scipy 1.17's least_squares(method="lm") returned different fits of one PSF
    # within one process (its finite differences depend on the process's state), which broke identical cubes.
    fitted, _ = leastsq(residual, x0=[sigma0 * 1.05, sigma0 * 0.95, 0.3], xtol=1e-10, ftol=1e-10)
    s1, s2, pa = abs(fitted[0]), abs(fitted[1]), fitted[2]
    if s2 > s1:
        s1, s2, pa = s2, s1, pa + np.pi / 2
    return s1, s2, pa % np.pi


def fit_beam(psf: np.ndarray, cell_rad: float, estimate_fwhm_rad: float, mode: str = "wsclean") -> Beam:
    """Least-squares fit of a centred, unit-peak elliptical Gaussian to the PSF, as WSClean does.

    The box is 10 x the estimated FWHM (at least 10 pixels, even); when the fitted major axis
    fills more than 80 % of it, the box grows to 10 x the fit and the fit is repeated (5 times at
    most). So a PSF with a broad plateau (natural weighting of a dense core) gets a broad beam.

    Args:
        psf: (n, n) PSF with its peak (1) at pixel (n/2, n/2).
        cell_rad: pixel size.
        estimate_fwhm_rad: first guess of the FWHM, 1 / longest baseline in wavelengths.
        mode: "wsclean" (its effective quadrant fit) or "full"; see BEAM_FITS.
    """
    n = psf.shape[0]
    estimate_px = estimate_fwhm_rad / cell_rad

    def box_for(fwhm_px: float) -> int:
        size = max(int(np.ceil(FIT_BOX_BEAMS)), int(np.ceil(fwhm_px * FIT_BOX_BEAMS)))
        return min(size + size % 2, n)

    box = box_for(estimate_px)
    for _ in range(5):
        s1, s2, pa = _fit_in_box(psf, box, max(estimate_px / FWHM_PER_SIGMA, 0.3), mode)
        major_px = s1 * FWHM_PER_SIGMA
        if major_px * FIT_BOX_BEAMS * 0.8 < box or box >= n:
            break
        box = box_for(major_px)
    return Beam(major_rad=s1 * FWHM_PER_SIGMA * cell_rad, minor_rad=s2 * FWHM_PER_SIGMA * cell_rad, pa_rad=pa)


def restore(model: np.ndarray, residual: np.ndarray, beam: Beam, cell_rad: float) -> np.ndarray:
    """Restored image = model convolved with the unit-peak beam (Jy/beam) + residual."""
    from scipy.signal import fftconvolve

    if not np.any(model):
        return residual.copy()
    return (fftconvolve(model, beam.kernel(cell_rad), mode="same") + residual).astype(np.float32)
