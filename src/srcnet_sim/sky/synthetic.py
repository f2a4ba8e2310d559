"""A seeded synthetic extragalactic field resembling the 1.4 GHz radio sky."""

from __future__ import annotations

import numpy as np

from srcnet_sim.constants import RAD_PER_ARCSEC as ARCSEC
from srcnet_sim.sky.model import SkyModel

REF_FREQ_HZ = 1.4e9

# Differential counts dN/dS ~ S^-gamma, piecewise: the Euclidean-normalised 1.4 GHz counts
# flatten below ~1 mJy (star-forming galaxies) and rise towards ~100 mJy (AGN), which power
# laws with these slopes reproduce to within a factor ~2 (Condon 1984; Smolcic et al. 2017).
COUNT_BREAKS_JY = np.array([20e-6, 1e-3, 1.0])
COUNT_SLOPES = np.array([1.6, 1.9])


def _sample_fluxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) flux densities in Jy drawn from the broken power-law counts."""
    lo, hi = COUNT_BREAKS_JY[:-1], COUNT_BREAKS_JY[1:]
    # Integral of S^-g over each segment, with continuity of dN/dS at the break.
    norm = np.array([1.0, COUNT_BREAKS_JY[1] ** (COUNT_SLOPES[1] - COUNT_SLOPES[0])])
    g1 = 1.0 - COUNT_SLOPES
    weight = norm * (hi**g1 - lo**g1) / g1
    segment = rng.choice(len(weight), size=n, p=weight / weight.sum())
    x = rng.random(n)
    a, b, g = lo[segment] ** g1[segment], hi[segment] ** g1[segment], g1[segment]
    return (a + x * (b - a)) ** (1.0 / g)


def uniform_on_cap(rng: np.random.Generator, ra0_rad: float, dec0_rad: float, radius_rad: float,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) (n,) radians, uniform on the spherical cap of `radius_rad` around (ra0, dec0): cos(distance)
    uniform, then the bearing uniform (drawn from `rng` in that order); ra within [0, 2 pi)."""
    cos_r = 1.0 - rng.random(n) * (1.0 - np.cos(radius_rad))
    distance = np.arccos(cos_r)
    bearing = rng.random(n) * 2.0 * np.pi
    dec = np.arcsin(np.sin(dec0_rad) * cos_r + np.cos(dec0_rad) * np.sin(distance) * np.cos(bearing))
    ra = ra0_rad + np.arctan2(np.sin(bearing) * np.sin(distance) * np.cos(dec0_rad),
                              cos_r - np.sin(dec0_rad) * np.sin(dec))
    return np.mod(ra, 2 * np.pi), dec


def synthetic_field(
    ra0_rad: float, dec0_rad: float, radius_rad: float, n_sources: int, seed: int, resolved_fraction: float = 0.1
) -> SkyModel:
    """A field of `n_sources` sources uniformly spread on the cap of `radius_rad` around (ra0, dec0).

    Fluxes follow 1.4 GHz differential source counts between 20 uJy and 1 Jy, spectral
    indices are normal around -0.7 (sigma 0.2), and `resolved_fraction` of the sources are
    Gaussians with log-normal FWHM around 3 arcsec, axis ratio 0.3-1, random position angle.
    """
    rng = np.random.default_rng(seed)
    ra, dec = uniform_on_cap(rng, ra0_rad, dec0_rad, radius_rad, n_sources)
    resolved = rng.random(n_sources) < resolved_fraction
    major = np.where(resolved, np.exp(rng.normal(np.log(3.0), 0.5, n_sources)) * ARCSEC, 0.0)
    minor = major * rng.uniform(0.3, 1.0, n_sources)
    order = np.argsort(resolved, kind="stable")  # point sources first, Gaussians last
    return SkyModel.from_columns(
        ra_rad=ra,
        dec_rad=dec,
        stokes_i_jy=_sample_fluxes(rng, n_sources),
        ref_freq_hz=np.full(n_sources, REF_FREQ_HZ),
        spectral_index=rng.normal(-0.7, 0.2, n_sources),
        major_fwhm_rad=major,
        minor_fwhm_rad=minor,
        position_angle_rad=rng.uniform(0.0, np.pi, n_sources),
    ).select(order)
