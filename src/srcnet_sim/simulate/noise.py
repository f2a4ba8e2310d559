"""Thermal noise from the radiometer equation with per-dish-type SEFD."""

from __future__ import annotations

import numpy as np

from srcnet_sim.constants import BOLTZMANN_J_K, JANSKY_W_M2_HZ


# SEFD = 2 k (Tsys / eta) / A_geom per polarisation, nominal L-band values:
#   MeerKAT 13.5 m: Tsys/eta = 22 K  -> ~424 Jy;  SKA 15 m: Tsys 20 K, eta 0.9 -> ~347 Jy.
SYSTEM_TEMP_OVER_EFFICIENCY_K = {13.5: 22.0, 15.0: 20.0 / 0.9}


def sefd_jy(diameters_m: np.ndarray) -> np.ndarray:
    """(n_dish,) system equivalent flux density per polarisation, Jy."""
    diameters_m = np.asarray(diameters_m, dtype=np.float64)
    t_over_eta = np.array([SYSTEM_TEMP_OVER_EFFICIENCY_K.get(round(d, 1), 20.0 / 0.9) for d in diameters_m])
    area_m2 = np.pi * (diameters_m / 2.0) ** 2
    return 2.0 * BOLTZMANN_J_K * t_over_eta / area_m2 / JANSKY_W_M2_HZ


def baseline_sigma_jy(sefd: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, channel_width_hz: float, interval_s: float) -> np.ndarray:
    """(n_bl,) rms of the real (and of the imaginary) part of one correlation, Jy.

    sigma = sqrt(SEFD_1 SEFD_2 / (2 dnu dt)); for an autocorrelation the same formula is used.
    """
    return np.sqrt(sefd[ant1] * sefd[ant2] / (2.0 * channel_width_hz * interval_s))


def add_noise(vis: np.ndarray, sigma: np.ndarray, seed: int, time_index: int, is_auto: np.ndarray | None = None,
              first_channel: int = 0) -> None:
    """Add complex Gaussian noise in place to (n_bl, n_chan, n_corr) `vis` with per-baseline sigma.

    Rows flagged in `is_auto` (n_bl,) are autocorrelations: their XX and YY (correlations 0 and 3)
    are real, with noise rms sqrt(2) sigma = SEFD / sqrt(dnu dt).

    `vis` holds channels first_channel, first_channel + 1, ... of the observation. Each channel of
    each time step has its own generator, seeded by (seed, time_index, channel), so a sample gets
    the same noise whatever the block (time range x channel range) or the worker that computes it.
    """
    real_dtype = np.float32 if vis.dtype == np.complex64 else np.float64
    scale = sigma[:, None]
    auto = is_auto is not None and np.any(is_auto)
    for k in range(vis.shape[1]):
        rng = np.random.default_rng([seed, time_index, first_channel + k])
        shape = (vis.shape[0], vis.shape[2])
        real = rng.standard_normal(shape, dtype=real_dtype)
        imag = rng.standard_normal(shape, dtype=real_dtype)
        if auto:
            for corr in (0, vis.shape[2] - 1):
                real[is_auto, corr] *= np.sqrt(2.0)
                imag[is_auto, corr] = 0.0
        vis[:, k, :] += (scale * real + 1j * scale * imag).astype(vis.dtype)
