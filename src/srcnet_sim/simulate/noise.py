"""Thermal noise from the radiometer equation with per-dish-type SEFD."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from srcnet_sim.constants import BOLTZMANN_J_K, JANSKY_W_M2_HZ


# SEFD = 2 k (Tsys / eta) / A_geom per polarisation, nominal L-band values:
#   MeerKAT 13.5 m: Tsys/eta = 22 K  -> ~424 Jy;  SKA 15 m: Tsys 20 K, eta 0.9 -> ~347 Jy.
SYSTEM_TEMP_OVER_EFFICIENCY_K = {13.5: 22.0, 15.0: 20.0 / 0.9}
SQRT2 = np.sqrt(2.0)


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
              first_channel: int = 0, threads: int | None = None) -> None:
    """Add complex Gaussian noise in place to (n_bl, n_chan, n_corr) `vis` with per-baseline sigma.

    Rows flagged in `is_auto` (n_bl,) are autocorrelations: their XX and YY (correlations 0 and 3)
    are real, with noise rms sqrt(2) sigma = SEFD / sqrt(dnu dt).

    `vis` holds channels first_channel, first_channel + 1, ... of the observation. Each channel of
    each time step has its own generator, seeded by (seed, time_index, channel), so a sample gets
    the same noise whatever the block (time range x channel range) or the worker that computes it;
    the channels are filled by `threads` threads at once (default numba's thread count of the caller:
    NumPy's generators and the kernel release the GIL), which changes no value.
    """
    real_dtype = np.float32 if vis.dtype == np.complex64 else np.float64
    auto = np.zeros(vis.shape[0], dtype=bool) if is_auto is None else np.asarray(is_auto, dtype=bool)
    scale = np.asarray(sigma, dtype=np.float64)
    shape = (vis.shape[0], vis.shape[2])

    def channel(k: int) -> None:
        rng = np.random.default_rng([seed, time_index, first_channel + k])
        real = rng.standard_normal(shape, dtype=real_dtype)
        imag = rng.standard_normal(shape, dtype=real_dtype)
        _add_scaled(vis, k, real, imag, scale, auto)

    n_threads = min(vis.shape[1], threads if threads is not None else numba.get_num_threads())
    if n_threads <= 1:
        for k in range(vis.shape[1]):
            channel(k)
    else:
        for _ in _pool(n_threads).map(channel, range(vis.shape[1])):
            pass


@functools.cache
def _pool(n_threads: int) -> ThreadPoolExecutor:
    """The threads that fill channels' noise at once (one pool per thread count, kept for the process)."""
    return ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="srcnet-sim-noise")


@numba.njit(nogil=True, cache=True)
def _add_scaled(vis, k, real, imag, scale, auto):  # pragma: no cover - compiled
    """vis[b, k, c] += scale[b] * (real[b, c] + i imag[b, c]), the addend rounded to vis's precision first (as NumPy's
    `vis += (scale * real + 1j * scale * imag).astype(vis.dtype)`, value for value); rows with auto[b] get
    sqrt(2) real[b, c] and no imaginary part in their first and last correlations (XX, YY)."""
    n_bl, n_corr = real.shape
    last = n_corr - 1
    for b in range(n_bl):
        s = scale[b]
        for c in range(n_corr):
            r, i = real[b, c], imag[b, c]
            if auto[b] and (c == 0 or c == last):
                r, i = real.dtype.type(r * SQRT2), real.dtype.type(0.0)
            vis[b, k, c] += complex(real.dtype.type(s * r), real.dtype.type(s * i))
