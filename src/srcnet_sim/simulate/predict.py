"""Visibility prediction for one time step by exact direct Fourier transform.

Everything that depends on one dish is evaluated per dish: the phase Z[p, s] = E_p(s) exp(+2 pi i
f tau_p(s)) with tau_p = (u_p l + v_p m + w_p (n - 1)) / c. Visibilities of baseline (p, q)
are then V_pq = sum_s B_s Z[p, s] conj(Z[q, s]):
- for point sources without smearing this is the matrix product Z diag(B) Z^H, done by BLAS;
- bandwidth/time smearing and Gaussian source envelopes depend on the baseline, so they are
  applied as per-baseline real weights inside a numba kernel that still reads the per-dish Z.

Correlations follow the linear-feed convention XX = I + Q, XY = U + iV, YX = U - iV, YY = I - Q.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.linalg import blas

from srcnet_sim.simulate.beams import SPEED_OF_LIGHT_M_S

GAUSS_ENVELOPE = np.pi**2 / (4.0 * np.log(2.0))


@dataclass(frozen=True)
class SourceTerms:
    """Per-source inputs that do not change with time.

    Attributes:
        lmn: (n_src, 3) direction cosines (l, m, n - 1).
        stokes: (n_chan, 4, n_src) Stokes I, Q, U, V in Jy per channel.
        beams: (n_type, n_chan, n_src) voltage beam per dish type.
        gaussian: (n_src, 4) per source [major^2, minor^2, sin(pa), cos(pa)] (FWHM in rad);
            rows of point sources are zero.
        n_point: sources [0, n_point) are points, [n_point, n_src) Gaussians.
    """

    lmn: np.ndarray
    stokes: np.ndarray
    beams: np.ndarray
    gaussian: np.ndarray
    n_point: int


def baseline_pairs(n_dish: int, autocorrelations: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n_baseline,) antenna index pairs, ant1 <= ant2, ordered by ant1 then ant2 (OSKAR/CASA)."""
    offset = 0 if autocorrelations else 1
    ant1, ant2 = np.triu_indices(n_dish, k=offset)
    return ant1.astype(np.int32), ant2.astype(np.int32)


@numba.njit(parallel=True, cache=True)
def _phasor_kernel(dish_uvw_m, lmn, beams, dish_type, freq0_hz, dfreq_hz, out):  # pragma: no cover
    """out[k, p, s] = beams[type(p), k, s] * exp(+2 pi i (freq0 + k dfreq) tau_ps), tau from uvw . lmn / c.

    Channels are equally spaced, so exp(2 pi i f_k tau) is advanced from channel to channel by one
    complex multiplication in double precision (two sincos per dish and source, not one per channel).
    """
    n_chan, n_dish, n_src = out.shape
    for p in numba.prange(n_dish):
        u, v, w = dish_uvw_m[p, 0], dish_uvw_m[p, 1], dish_uvw_m[p, 2]
        t = dish_type[p]
        for s in range(n_src):
            tau = (u * lmn[s, 0] + v * lmn[s, 1] + w * lmn[s, 2]) / 2.99792458e8
            phase0 = 2.0 * np.pi * freq0_hz * tau
            step = 2.0 * np.pi * dfreq_hz * tau
            re, im = np.cos(phase0), np.sin(phase0)
            step_re, step_im = np.cos(step), np.sin(step)
            for k in range(n_chan):
                e = beams[t, k, s]
                out[k, p, s] = complex(e * re, e * im)
                re, im = re * step_re - im * step_im, re * step_im + im * step_re


def dish_phasors(dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray, dtype: type) -> np.ndarray:
    """(n_chan, n_dish, n_src) Z = E exp(+2 pi i f tau) in `dtype` (complex64 or complex128).

    freq_hz must be equally spaced (channel k at freq_hz[0] + k * spacing).
    """
    n_chan = len(freq_hz)
    spacing = float(freq_hz[1] - freq_hz[0]) if n_chan > 1 else 0.0
    if n_chan > 2 and not np.allclose(np.diff(freq_hz), spacing, rtol=1e-9, atol=0.0):
        raise ValueError("dish_phasors needs equally spaced channels")
    z = np.empty((n_chan, len(dish_uvw_m), len(terms.lmn)), dtype=dtype)
    _phasor_kernel(np.ascontiguousarray(dish_uvw_m, dtype=np.float64), np.ascontiguousarray(terms.lmn),
                   np.ascontiguousarray(terms.beams, dtype=np.float64), dish_type.astype(np.int64),
                   float(freq_hz[0]), spacing, z)
    return z


def _stokes_sums_blas(z_k: np.ndarray, stokes_k: np.ndarray, polarised: bool) -> list[np.ndarray]:
    """[S_I, S_Q, S_U, S_V], each (n_dish, n_dish) upper-triangular sum_s X_s Z_p conj(Z_q)."""
    herk = blas.cherk if z_k.dtype == np.complex64 else blas.zherk
    sums = []
    for x in stokes_k if polarised else stokes_k[:1]:
        if np.all(x >= 0):
            # herk(trans='C') on A = conj(Z)^T (n_src x n_dish, Fortran) gives sum_s Z_p conj(Z_q).
            a = np.asfortranarray((np.conj(z_k) * np.sqrt(x)).T)
            sums.append(herk(1.0, a, trans=2, lower=0))
        else:
            sums.append((z_k * x) @ z_k.conj().T)
    while len(sums) < 4:
        sums.append(None)
    return sums


@numba.njit(parallel=True, fastmath=True, cache=True)
def _weighted_sums(z, stokes, ant1, ant2, bw_x, bw_sin, bw_cos, rate, freq_hz, interval_s,
                   uvw_m, gaussian, n_point, n_stokes, out):  # pragma: no cover - compiled
    """Per-baseline weighted DFT sums.

    z: (n_chan, n_dish, n_src) complex Z.
    stokes: (n_chan, 4, n_src); n_stokes: 1 (I only) or 4.
    bw_x, bw_sin, bw_cos: (n_dish, n_src) x = pi * channel_width * tau and its sine/cosine,
        or empty (0, 0) arrays when bandwidth smearing is off.
    rate: (n_dish, n_src) d(tau)/dt in s/s, or (0, 0) when time smearing is off.
    uvw_m: (n_dish, 3); gaussian: (n_src, 4); sources [n_point, n_src) are Gaussians.
    out: (n_baseline, n_chan, 4) float64 sums [re S_I, im S_I, ...] written as complex pairs
        in a (n_baseline, n_chan, 4, 2) view.
    """
    n_chan, _, n_src = z.shape
    n_bl = ant1.shape[0]
    smear_bw = bw_x.shape[0] > 0
    smear_t = rate.shape[0] > 0
    for b in numba.prange(n_bl):
        p = ant1[b]
        q = ant2[b]
        weight = np.ones(n_src)
        if smear_bw and p != q:
            for s in range(n_src):
                d = bw_x[p, s] - bw_x[q, s]
                if abs(d) < 1e-4:
                    weight[s] = 1.0 - d * d / 6.0
                else:
                    weight[s] = (bw_sin[p, s] * bw_cos[q, s] - bw_cos[p, s] * bw_sin[q, s]) / d
        du = uvw_m[p, 0] - uvw_m[q, 0]
        dv = uvw_m[p, 1] - uvw_m[q, 1]
        weight_k = np.empty(n_src)
        for k in range(n_chan):
            inv_lambda = freq_hz[k] / 2.99792458e8
            ul = du * inv_lambda
            vl = dv * inv_lambda
            for s in range(n_src):
                weight_k[s] = weight[s]
            if smear_t and p != q:
                for s in range(n_src):
                    y = np.pi * interval_s * freq_hz[k] * (rate[p, s] - rate[q, s])
                    if abs(y) > 1e-4:
                        weight_k[s] *= np.sin(y) / y
            for s in range(n_point, n_src):
                a = ul * gaussian[s, 2] + vl * gaussian[s, 3]
                c = ul * gaussian[s, 3] - vl * gaussian[s, 2]
                weight_k[s] *= np.exp(-GAUSS_ENVELOPE * (gaussian[s, 0] * a * a + gaussian[s, 1] * c * c))
            for x in range(n_stokes):
                acc_re = 0.0
                acc_im = 0.0
                for s in range(n_src):
                    w = weight_k[s] * stokes[k, x, s]
                    zp = z[k, p, s]
                    zq = z[k, q, s]
                    pr, pi_, qr, qi = zp.real, zp.imag, zq.real, zq.imag
                    acc_re += w * (pr * qr + pi_ * qi)
                    acc_im += w * (pi_ * qr - pr * qi)
                out[b, k, x, 0] = acc_re
                out[b, k, x, 1] = acc_im


def predict_time_step(
    dish_uvw_m: np.ndarray,
    terms: SourceTerms,
    dish_type: np.ndarray,
    freq_hz: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    channel_width_hz: float = 0.0,
    dish_delay_rate: np.ndarray | None = None,
    interval_s: float = 0.0,
    dtype: type = np.complex64,
) -> np.ndarray:
    """Visibilities of one time step, (n_baseline, n_chan, 4) in `dtype`, Jy.

    Args:
        dish_uvw_m: (n_dish, 3) per-dish UVW, metres (baseline UVW = uvw[ant1] - uvw[ant2]).
        terms: per-source inputs (directions, Stokes per channel, beams, Gaussian shapes).
        dish_type: (n_dish,) index of each dish into terms.beams.
        freq_hz: (n_chan,) channel centres, Hz.
        ant1, ant2: (n_baseline,) antenna indices.
        channel_width_hz: > 0 applies bandwidth smearing sinc(pi dnu dtau).
        dish_delay_rate: (n_dish, n_src) d(tau)/dt, with interval_s > 0 applies time smearing.
        dtype: complex64 (single precision) or complex128 (double).
    """
    polarised = bool(np.any(terms.stokes[:, 1:, :]))
    z = dish_phasors(dish_uvw_m, terms, dish_type, freq_hz, dtype)
    n_chan = len(freq_hz)
    smear_time = dish_delay_rate is not None and interval_s > 0
    separable = channel_width_hz <= 0 and not smear_time and terms.n_point == len(terms.lmn)
    sums = np.zeros((len(ant1), n_chan, 4), dtype=np.complex128 if dtype == np.complex128 else np.complex64)
    if separable:
        for k in range(n_chan):
            for x, matrix in enumerate(_stokes_sums_blas(z[k], terms.stokes[k], polarised)):
                if matrix is not None:
                    sums[:, k, x] = matrix[ant1, ant2]
    else:
        real = np.float32 if dtype == np.complex64 else np.float64
        empty = np.zeros((0, 0))
        if channel_width_hz > 0:
            bw_x = (np.pi * channel_width_hz / SPEED_OF_LIGHT_M_S) * (dish_uvw_m @ terms.lmn.T)
            bw_sin, bw_cos = np.sin(bw_x), np.cos(bw_x)
        else:
            bw_x = bw_sin = bw_cos = empty
        raw = np.zeros((len(ant1), n_chan, 4, 2))
        _weighted_sums(
            z, terms.stokes.astype(real), ant1, ant2, bw_x, bw_sin, bw_cos,
            dish_delay_rate if smear_time else empty, np.asarray(freq_hz, dtype=np.float64), float(interval_s),
            np.asarray(dish_uvw_m, dtype=np.float64), terms.gaussian, terms.n_point, 4 if polarised else 1, raw,
        )
        sums[...] = raw[..., 0] + 1j * raw[..., 1]
    auto = ant1 == ant2
    if np.any(auto):  # sum_s X_s |Z_p|^2 is real: drop round-off imaginary parts
        sums[auto] = sums[auto].real
    return stokes_to_linear(sums).astype(dtype, copy=False)


def stokes_to_linear(sums: np.ndarray) -> np.ndarray:
    """(..., 4) Stokes sums [I, Q, U, V] -> linear correlations [XX, XY, YX, YY]."""
    i, q, u, v = (sums[..., x] for x in range(4))
    return np.stack([i + q, u + 1j * v, u - 1j * v, i - q], axis=-1)
