"""Visibility prediction for one time step by exact direct Fourier transform.

Everything that depends on one dish is evaluated per dish: the phasor Z[p, s] = E_p(s) exp(+2 pi i
f tau_p(s)) with tau_p = (u_p l + v_p m + w_p (n - 1)) / c. Visibilities of baseline (p, q) are
V_pq = sum_s B_s Z[p, s] conj(Z[q, s]):
- for point sources without smearing this is the matrix product Z diag(B) Z^H, done by BLAS
  (herk: half of a complex matrix product);
- bandwidth/time smearing and Gaussian source envelopes depend on the baseline, so they enter
  as per-baseline real weights in a numba kernel that still reads the per-dish Z.

Correlations follow the linear-feed convention XX = I + Q, XY = U + iV, YX = U - iV, YY = I - Q.
Arithmetic is in the precision of `dtype` (complex64: float32 sums, as BLAS cgemm does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.linalg import blas

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.simulate.vecmath import exp_nonpositive, sincos_turns

GAUSS_ENVELOPE = np.pi**2 / (4.0 * np.log(2.0))
SOURCE_CHUNK = 2048  # sources per kernel pass: every dish's phasors of a chunk stay in cache (1.5x faster here)


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
    ant1, ant2 = np.triu_indices(n_dish, k=0 if autocorrelations else 1)
    return ant1.astype(np.int32), ant2.astype(np.int32)


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _phasor_kernel(dish_uvw_m, l, m, n1, beams, dish_type, freq_hz, z_re, z_im):  # pragma: no cover - compiled
    """z[k, p, s] = beams[type(p), k, s] * exp(+2 pi i f_k (u_p l_s + v_p m_s + w_p n1_s) / c), in parts."""
    n_chan, n_dish, n_src = z_re.shape
    for p in numba.prange(n_dish):
        u, v, w = dish_uvw_m[p, 0], dish_uvw_m[p, 1], dish_uvw_m[p, 2]
        t = dish_type[p]
        for k in range(n_chan):
            scale = freq_hz[k] / SPEED_OF_LIGHT_M_S
            for s in range(n_src):
                sin_, cos_ = sincos_turns(scale * (u * l[s] + v * m[s] + w * n1[s]))
                e = beams[t, k, s]
                z_re[k, p, s] = e * cos_
                z_im[k, p, s] = e * sin_


def dish_phasors(dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray,
                 real_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of Z = E exp(+2 pi i f tau), each (n_chan, n_dish, n_src) of `real_dtype`."""
    shape = (len(freq_hz), len(dish_uvw_m), len(terms.lmn))
    z_re, z_im = np.empty(shape, dtype=real_dtype), np.empty(shape, dtype=real_dtype)
    l, m, n1 = (np.ascontiguousarray(terms.lmn[:, axis], dtype=np.float64) for axis in range(3))
    _phasor_kernel(np.ascontiguousarray(dish_uvw_m, dtype=np.float64), l, m, n1,
                   np.ascontiguousarray(terms.beams, dtype=np.float64), dish_type.astype(np.int64),
                   np.asarray(freq_hz, dtype=np.float64), z_re, z_im)
    return z_re, z_im


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _sincos_array(turns, sin_out, cos_out):  # pragma: no cover - compiled
    """sin and cos of 2 pi * turns for a 2-D array."""
    for i in numba.prange(turns.shape[0]):
        for j in range(turns.shape[1]):
            sin_out[i, j], cos_out[i, j] = sincos_turns(turns[i, j])


@numba.njit(parallel=True, cache=True, nogil=True)
def _weighted_conjugate(z_re, z_im, weight, out):  # pragma: no cover - compiled
    """out[s, p] = sqrt(weight[s]) * conj(Z[p, s]): the Fortran-ordered operand of herk."""
    n_dish, n_src = z_re.shape
    for p in numba.prange(n_dish):
        for s in range(n_src):
            root = np.sqrt(weight[s])
            out[s, p] = complex(root * z_re[p, s], -root * z_im[p, s])


def _stokes_sums_blas(z_re: np.ndarray, z_im: np.ndarray, stokes: np.ndarray, n_stokes: int, complex_dtype: type) -> list[np.ndarray]:
    """Per Stokes parameter the (n_dish, n_dish) upper triangle of sum_s X_s Z_p conj(Z_q).

    herk needs non-negative weights, so X is split into its positive and negative parts.
    """
    herk = blas.cherk if complex_dtype == np.complex64 else blas.zherk
    n_dish, n_src = z_re.shape
    sums = []
    for x in stokes[:n_stokes]:
        total = np.zeros((n_dish, n_dish), dtype=complex_dtype)
        for part, sign in ((np.clip(x, 0, None), 1.0), (np.clip(-x, 0, None), -1.0)):
            if np.any(part):
                a = np.empty((n_src, n_dish), dtype=complex_dtype, order="F")
                _weighted_conjugate(z_re, z_im, part.astype(z_re.dtype), a)
                # herk(trans='C') gives A^H A = sum_s w_s Z_p conj(Z_q) for A[s, p] = sqrt(w_s) conj(Z[p, s]).
                total += sign * herk(1.0, a, trans=2, lower=0)
        sums.append(total)
    return sums


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _weighted_sums(z_re, z_im, stokes, n_stokes, ant1, ant2, bw_x, bw_sin, bw_cos, rate, freq_hz, interval_s,
                   uvw_m, gaussian, n_point, out):  # pragma: no cover - compiled
    """Per-baseline sums over all sources given, with baseline-dependent real weights.

    Every inner loop runs over range(n_src) from 0: a variable start defeats LLVM's vectorisation
    (5x slower here), so callers pass contiguous slices instead.

    z_re, z_im: (n_chan, n_dish, n_src) parts of Z; stokes: (n_chan, 4, n_src), n_stokes 1 or 4.
    bw_x, bw_sin, bw_cos: (n_dish, n_src) x = pi * channel_width * tau and its sine and cosine
        (bandwidth smearing sinc(x_p - x_q)), in the precision of z, or (0, 0) arrays when off.
    rate: (n_dish, n_src) d(tau)/dt in s/s (time smearing over interval_s), or (0, 0) when off.
    uvw_m: (n_dish, 3); sources [n_point, n_src) are Gaussians, gaussian (4, n_src - n_point) their
        [major^2, minor^2, sin pa, cos pa] as contiguous rows (rows vectorise, columns do not).
    out: (n_baseline, n_chan, 4, 2) real and imaginary parts of the Stokes sums, added to.
    """
    n_chan, _, n_src = z_re.shape
    zero = z_re[0, 0, 0] * 0
    smear_bw = bw_x.shape[0] > 0
    smear_t = rate.shape[0] > 0
    for b in numba.prange(ant1.shape[0]):
        p = ant1[b]
        q = ant2[b]
        weight = np.ones(n_src, dtype=z_re.dtype)
        if smear_bw and p != q:
            for s in range(n_src):
                # sinc(d) = sin(x_p - x_q) / (x_p - x_q), the sine expanded so that no sine is evaluated here;
                # a short Taylor series below |d| = 0.05 where the difference of products cancels.
                d = bw_x[p, s] - bw_x[q, s]
                d2 = d * d
                taylor = 1.0 - d2 / 6.0 + d2 * d2 / 120.0
                weight[s] = taylor if abs(d) < 0.05 else (bw_sin[p, s] * bw_cos[q, s] - bw_cos[p, s] * bw_sin[q, s]) / d
        du = uvw_m[p, 0] - uvw_m[q, 0]
        dv = uvw_m[p, 1] - uvw_m[q, 1]
        n_gauss = n_src - n_point
        time_k = smear_t and p != q
        # Channel-dependent weights: time smearing (all sources), Gaussian envelopes (the last n_gauss).
        weight_k = np.empty(n_src if time_k else 0, dtype=z_re.dtype)
        weight_g = np.empty(n_gauss, dtype=z_re.dtype)
        for k in range(n_chan):
            if time_k:
                for s in range(n_src):
                    y = 0.5 * interval_s * freq_hz[k] * (rate[p, s] - rate[q, s])  # turns: pi y_rad = 2 pi y
                    sin_, _ = sincos_turns(y)
                    weight_k[s] = weight[s] * (sin_ / (2.0 * np.pi * y) if abs(y) > 1e-5 else 1.0)
            base = weight_k if time_k else weight
            ul = du * freq_hz[k] / SPEED_OF_LIGHT_M_S
            vl = dv * freq_hz[k] / SPEED_OF_LIGHT_M_S
            for j in range(n_gauss):  # zero-based loops throughout: see above
                a = ul * gaussian[2, j] + vl * gaussian[3, j]
                c = ul * gaussian[3, j] - vl * gaussian[2, j]
                envelope = exp_nonpositive(-GAUSS_ENVELOPE * (gaussian[0, j] * a * a + gaussian[1, j] * c * c))
                weight_g[j] = base[n_point + j] * envelope
            for x in range(n_stokes):
                acc_re = zero
                acc_im = zero
                for s in range(n_point):
                    w = base[s] * stokes[k, x, s]
                    pr = z_re[k, p, s]
                    pi_ = z_im[k, p, s]
                    qr = z_re[k, q, s]
                    qi = z_im[k, q, s]
                    acc_re += w * (pr * qr + pi_ * qi)
                    acc_im += w * (pi_ * qr - pr * qi)
                for j in range(n_gauss):
                    s = n_point + j
                    w = weight_g[j] * stokes[k, x, s]
                    pr = z_re[k, p, s]
                    pi_ = z_im[k, p, s]
                    qr = z_re[k, q, s]
                    qi = z_im[k, q, s]
                    acc_re += w * (pr * qr + pi_ * qi)
                    acc_im += w * (pi_ * qr - pr * qi)
                out[b, k, x, 0] += acc_re
                out[b, k, x, 1] += acc_im


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
        dish_delay_rate: (n_dish, n_src) d(tau)/dt; with interval_s > 0 applies time smearing.
        dtype: complex64 (single precision) or complex128 (double).
    """
    real_dtype = np.float32 if dtype == np.complex64 else np.float64
    n_stokes = 4 if np.any(terms.stokes[:, 1:, :]) else 1
    z_re, z_im = dish_phasors(dish_uvw_m, terms, dish_type, freq_hz, real_dtype)
    n_chan, n_src = len(freq_hz), len(terms.lmn)
    smear_time = dish_delay_rate is not None and interval_s > 0
    smear = channel_width_hz > 0 or smear_time
    # Point sources go through BLAS unless smearing makes every source baseline-dependent.
    kernel_start = n_src if not smear and terms.n_point == n_src else (0 if smear else terms.n_point)
    sums = np.zeros((len(ant1), n_chan, 4), dtype=np.complex128)
    if kernel_start > 0:
        points = slice(0, kernel_start)
        for k in range(n_chan):
            matrices = _stokes_sums_blas(np.ascontiguousarray(z_re[k, :, points]), np.ascontiguousarray(z_im[k, :, points]),
                                         terms.stokes[k, :, points], n_stokes, dtype)
            for x, matrix in enumerate(matrices):
                sums[:, k, x] = matrix[ant1, ant2]
    if kernel_start < n_src:
        rest = slice(kernel_start, n_src)
        lmn = terms.lmn[rest]
        empty = np.zeros((0, 0))
        if channel_width_hz > 0:
            bw_turns = (0.5 * channel_width_hz / SPEED_OF_LIGHT_M_S) * (dish_uvw_m @ lmn.T)  # x / (2 pi)
            bw_sin, bw_cos = np.empty_like(bw_turns, dtype=real_dtype), np.empty_like(bw_turns, dtype=real_dtype)
            _sincos_array(bw_turns, bw_sin, bw_cos)
            bw_x = (2.0 * np.pi * bw_turns).astype(real_dtype)
        else:
            bw_x = bw_sin = bw_cos = empty
        raw = np.zeros((len(ant1), n_chan, 4, 2))
        stokes = terms.stokes.astype(real_dtype)
        rate = dish_delay_rate if smear_time else None
        freq64, uvw64 = np.asarray(freq_hz, dtype=np.float64), np.asarray(dish_uvw_m, dtype=np.float64)
        # Sources in chunks whose phasors for every dish stay in the cores' caches while all baselines read them
        # (one pass over all sources streams every dish's phasors from memory once per baseline).
        for c0 in range(kernel_start, n_src, SOURCE_CHUNK):
            c1 = min(c0 + SOURCE_CHUNK, n_src)
            chunk, local = slice(c0, c1), slice(c0 - kernel_start, c1 - kernel_start)
            n_point = min(max(terms.n_point - c0, 0), c1 - c0)

            def part(array: np.ndarray) -> np.ndarray:
                return np.ascontiguousarray(array[:, local]) if array.size else array

            _weighted_sums(np.ascontiguousarray(z_re[:, :, chunk]), np.ascontiguousarray(z_im[:, :, chunk]),
                           np.ascontiguousarray(stokes[:, :, chunk]), n_stokes, ant1, ant2,
                           part(bw_x), part(bw_sin), part(bw_cos),
                           np.ascontiguousarray(rate[:, chunk]) if smear_time else empty,
                           freq64, float(interval_s), uvw64, np.ascontiguousarray(terms.gaussian[c0 + n_point:c1].T),
                           n_point, raw)
        sums += raw[..., 0] + 1j * raw[..., 1]
    auto = ant1 == ant2
    if np.any(auto):  # sum_s X_s |Z_p|^2 is real: drop round-off imaginary parts
        sums[auto] = sums[auto].real
    return stokes_to_linear(sums).astype(dtype)


def stokes_to_linear(sums: np.ndarray) -> np.ndarray:
    """(..., 4) Stokes sums [I, Q, U, V] -> linear correlations [XX, XY, YX, YY]."""
    i, q, u, v = (sums[..., x] for x in range(4))
    return np.stack([i + q, u + 1j * v, u - 1j * v, i - q], axis=-1)
