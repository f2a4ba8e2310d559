"""A seeded synthetic HI field (SKY_MODEL=SYNTHETIC_HI): galaxies whose 21 cm lines fall in the observed band.

Each galaxy is drawn from published scaling relations, with no network:
  - HI mass from the ALFALFA HI mass function, a Schechter function in log M with alpha = -1.25,
    log(M*/Msun) = 9.94 (Jones et al. 2018, MNRAS 477, 2; H0 = 70), between 10^8 and 10^11 Msun;
  - redshift from the comoving volume (Planck 2018 cosmology, astropy's Planck18) between the redshifts that put the
    line at the band's first and last channel centres (no evolution of the mass function);
  - integrated flux from the mass: M_HI / Msun = 49.7 (D_L / Mpc)^2 (S / Jy Hz) (Meyer et al. 2017, PASA 34, e052,
    eq. 48);
  - rotation from the baryonic Tully-Fisher relation M_b = 47 V^4 Msun (km/s)^-4 (McGaugh 2012, AJ 143, 40) with
    M_b = 2 M_HI (gas-rich discs; an assumption), seen at an inclination with cos i uniform, and a gas dispersion
    of 10 km/s: the double-horned disc profile of sky.lines with V sin i;
  - HI diameter from the HI size-mass relation log(D_HI / kpc) = 0.506 log(M_HI / Msun) - 3.293 (Wang et al. 2016,
    MNRAS 460, 2143), taken as the Gaussian's FWHM, with the axis ratio of a disc of thickness 0.2 (Holmberg).
Positions are uniform on the cap of the field; the galaxies have no continuum.
"""

from __future__ import annotations

import numpy as np

from srcnet_sim.constants import RAD_PER_DEG as DEG
from srcnet_sim.errors import UserInputError
from srcnet_sim.constants import HI_REST_FREQ_HZ
from srcnet_sim.sky.catalogues import C_KM_S, HI_DISPERSION_KMS, HOLMBERG_THICKNESS
from srcnet_sim.sky.lines import disc_w20_hz
from srcnet_sim.sky.model import SkyModel
from srcnet_sim.sky.synthetic import uniform_on_cap

HIMF_ALPHA = -1.25
HIMF_LOG_MSTAR = 9.94
LOG_MASS_RANGE = (8.0, 11.0)
HI_MASS_PER_JY_HZ_MPC2 = 49.7
BTFR_MSUN_PER_KMS4 = 47.0
BARYON_PER_HI = 2.0
HI_SIZE_SLOPE, HI_SIZE_ZERO = 0.506, -3.293
KPC_PER_MPC = 1000.0


def _sample_log_mass(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) log10(M_HI / Msun) from the Schechter mass function dn/dlogM ~ x^(alpha+1) exp(-x), x = M / M*."""
    grid = np.linspace(*LOG_MASS_RANGE, 4001)
    x = 10.0 ** (grid - HIMF_LOG_MSTAR)
    density = x ** (HIMF_ALPHA + 1.0) * np.exp(-x)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def _sample_redshift(rng: np.random.Generator, n: int, z_lo: float, z_hi: float) -> np.ndarray:
    """(n,) redshifts distributed as the comoving volume dV/dz between z_lo and z_hi."""
    from astropy.cosmology import Planck18

    grid = np.linspace(z_lo, z_hi, 2001)
    volume = Planck18.comoving_volume(grid).value
    return np.interp(rng.random(n), (volume - volume[0]) / (volume[-1] - volume[0]), grid)


def synthetic_hi_field(ra0_rad: float, dec0_rad: float, radius_rad: float, n_sources: int, seed: int,
                       freq_hz: np.ndarray) -> SkyModel:
    """`n_sources` HI galaxies on the cap of `radius_rad` around (ra0, dec0), their lines centred between the
    first and last of the channel centres `freq_hz` (Hz)."""
    lo_hz, hi_hz = float(np.min(freq_hz)), float(np.max(freq_hz))
    if lo_hz >= HI_REST_FREQ_HZ:
        raise UserInputError("SKY_MODEL", f"SYNTHETIC_HI: the band ({lo_hz / 1e6:.6g}-{hi_hz / 1e6:.6g} MHz) lies above "
                             "the HI line's rest frequency (1420.405752 MHz): no redshifted HI falls in it")
    from astropy.cosmology import Planck18

    z_lo = max(HI_REST_FREQ_HZ / min(hi_hz, HI_REST_FREQ_HZ) - 1.0, 1e-3)  # beyond ~4 Mpc: no Local Group
    z_hi = HI_REST_FREQ_HZ / lo_hz - 1.0
    if z_hi <= z_lo:
        raise UserInputError("SKY_MODEL", f"SYNTHETIC_HI: the band ({lo_hz / 1e6:.6g}-{hi_hz / 1e6:.6g} MHz) holds only "
                             "HI nearer than 4 Mpc; choose channels further below 1420.4 MHz")
    rng = np.random.default_rng([seed, 21])  # the HI stream: independent of the continuum field of the same seed
    ra, dec = uniform_on_cap(rng, ra0_rad, dec0_rad, radius_rad, n_sources)
    log_mass = _sample_log_mass(rng, n_sources)
    z = _sample_redshift(rng, n_sources, z_lo, z_hi)
    grid = np.linspace(z_lo, z_hi, 512)
    d_l = np.interp(z, grid, Planck18.luminosity_distance(grid).value)  # Mpc
    d_a = np.interp(z, grid, Planck18.angular_diameter_distance(grid).value)
    mass = 10.0 ** log_mass
    freq = HI_REST_FREQ_HZ / (1.0 + z)
    per_kms = freq / C_KM_S
    cos_i = rng.random(n_sources)
    v_rot = (BARYON_PER_HI * mass / BTFR_MSUN_PER_KMS4) ** 0.25  # km/s
    v_los = v_rot * np.sqrt(1.0 - cos_i**2)
    # The galaxy's rest-frame velocities, observed at its redshift: dnu = dv nu_obs / c.
    sigma_hz = np.full(n_sources, HI_DISPERSION_KMS) * per_kms
    w20_hz = disc_w20_hz(v_los * per_kms, sigma_hz)
    diameter_rad = 10.0 ** (HI_SIZE_SLOPE * log_mass + HI_SIZE_ZERO) / (d_a * KPC_PER_MPC)
    axis_ratio = np.sqrt(cos_i**2 * (1 - HOLMBERG_THICKNESS**2) + HOLMBERG_THICKNESS**2)
    return SkyModel.from_columns(
        ra_rad=ra, dec_rad=dec, stokes_i_jy=np.zeros(n_sources),
        major_fwhm_rad=diameter_rad, minor_fwhm_rad=diameter_rad * axis_ratio,
        position_angle_rad=rng.uniform(0.0, 180.0, n_sources) * DEG,
        line_flux_jy_hz=mass / (HI_MASS_PER_JY_HZ_MPC2 * d_l**2), line_freq_hz=freq, line_w20_hz=w20_hz,
        line_sigma_hz=sigma_hz,
    ).select(np.argsort(diameter_rad > 0, kind="stable"))
