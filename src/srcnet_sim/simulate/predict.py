"""Visibility prediction for one time step by exact direct Fourier transform.

Everything that depends on one dish is evaluated per dish: the phasor Z[p, s] = E_p(s) exp(+2 pi i
f tau_p(s)) with tau_p = (u_p l + v_p m + w_p (n - 1)) / c. Visibilities of baseline (p, q) are
V_pq = sum_s B_s Z[p, s] conj(Z[q, s]):
- for point sources without smearing this is the matrix product Z diag(B) Z^H, done by BLAS
  (herk: half of a complex matrix product);
- bandwidth/time smearing and Gaussian source envelopes depend on the baseline, so they enter
  as per-baseline real weights in the tiled numba kernel of `baseline_kernel`.

Correlations follow the linear-feed convention XX = I + Q, XY = U + iV, YX = U - iV, YY = I - Q. With beams that
differ between H and V (`SourceTerms.jones`: J_p = diag(E_H,p, E_V,p), evaluated at each step's parallactic angle)
V_pq = J_p B J_q^H: XX = sum E_H,p E_H,q (I + Q), XY = sum E_H,p E_V,q (U + iV), YX = sum E_V,p E_H,q (U - iV),
YY = sum E_V,p E_V,q (I - Q), each through the per-baseline kernel (JONES_TERMS).
Arithmetic is in the precision of `dtype` (complex64: float32 sums, as BLAS cgemm does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.instrument.beams import PolarisedBeams
from srcnet_sim.simulate.baseline_kernel import PackingBuffers, weighted_baseline_sums
from srcnet_sim.simulate.vecmath import phasor_row_double



@dataclass(frozen=True)
class SourceTerms:
    """Per-source inputs that do not change with time.

    Attributes:
        lmn: (n_src, 3) direction cosines (l, m, n - 1).
        stokes: (n_chan, 4, n_src) Stokes I, Q, U, V in Jy per channel.
        beams: (n_type, n_chan, n_src) voltage beam per dish type, the same in H and V; (0, n_chan, n_src) when
            `jones` gives the beams.
        gaussian: (n_src, 4) per source [major^2, minor^2, sin(pa), cos(pa)] (FWHM in rad);
            rows of point sources are zero.
        n_point: sources [0, n_point) are points, [n_point, n_src) Gaussians.
        jones: the H and V beams of each dish type at a parallactic angle, when they differ and turn on the sky
            (instrument.beams.has_rotating_beams), else None.
    """

    lmn: np.ndarray
    stokes: np.ndarray
    beams: np.ndarray
    gaussian: np.ndarray
    n_point: int
    jones: PolarisedBeams | None = None


# The sums of beams that differ in H and V: [Stokes x, polarisation of p, polarisation of q] (0 = H/X, 1 = V/Y), and
# the coefficient of each sum in XX, XY, YX, YY (see the module's docstring).
JONES_TERMS = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 1], [3, 0, 1], [2, 1, 0], [3, 1, 0], [0, 1, 1], [1, 1, 1]])
JONES_COEFFICIENTS = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1j, 0, 0],
                               [0, 0, 1, 0], [0, 0, -1j, 0], [0, 0, 0, 1], [0, 0, 0, -1]], dtype=np.complex128)
UNPOLARISED = [0, 6]  # the rows of JONES_TERMS for a sky of Stokes I only: XX and YY
# The GPU predictor's kernels form Z_p conj(Z_q) of one beam pattern per pass, not the mixed E_H,p E_V,q of XY and YX.
POLARISED_SKY_WITH_TURNING_BEAMS = ("gpu models BEAM=everybeam's MeerKAT beams (H and V patterns that turn with the "
                                    "parallactic angle) for a Stokes I sky only, and this sky has Q, U or V: use "
                                    "BACKEND=cpu")

def baseline_pairs(n_dish: int, autocorrelations: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n_baseline,) antenna index pairs, ant1 <= ant2, ordered by ant1 then ant2 (OSKAR/CASA)."""
    ant1, ant2 = np.triu_indices(n_dish, k=0 if autocorrelations else 1)
    return ant1.astype(np.int32), ant2.astype(np.int32)


# Below this many values a compiled loop runs on the calling thread: starting numba's threads costs more than
# the work (one source's phasors: 144 values), all the more while the MS writer's process takes the other core.
# The choice depends on the sizes only, so every executor and thread count gives the same bytes.
PARALLEL_MIN_VALUES = 1 << 14


def _phasor_loop(dish_uvw_m, l, m, n1, beams, dish_type, freq_hz, z_re, z_im):  # pragma: no cover - compiled
    """z[k, p, s] = beams[type(p), k, s] * exp(+2 pi i f_k (u_p l_s + v_p m_s + w_p n1_s) / c), in parts."""
    n_chan, n_dish, n_src = z_re.shape
    for p in numba.prange(n_dish):
        u, v, w = dish_uvw_m[p, 0], dish_uvw_m[p, 1], dish_uvw_m[p, 2]
        t = dish_type[p]
        for k in range(n_chan):
            phasor_row_double(u, v, w, l, m, n1, freq_hz[k] / SPEED_OF_LIGHT_M_S, beams[t, k], z_im[k, p], z_re[k, p])


_phasor_kernel = numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)(_phasor_loop)
_phasor_kernel_serial = numba.njit(fastmath=True, cache=True, nogil=True)(_phasor_loop)


def dish_phasors(dish_uvw_m: np.ndarray, lmn: np.ndarray, beams: np.ndarray, dish_type: np.ndarray, freq_hz: np.ndarray,
                 real_dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of Z = E exp(+2 pi i f tau), each (n_chan, n_dish, n_src) of `real_dtype`.

    lmn: (n_src, 3) direction cosines (l, m, n - 1); beams: (n_type, n_chan, n_src) voltage beams.
    """
    shape = (len(freq_hz), len(dish_uvw_m), len(lmn))
    z_re, z_im = np.empty(shape, dtype=real_dtype), np.empty(shape, dtype=real_dtype)
    l, m, n1 = (np.ascontiguousarray(lmn[:, axis], dtype=np.float64) for axis in range(3))
    kernel = _phasor_kernel if z_re.size >= PARALLEL_MIN_VALUES else _phasor_kernel_serial
    kernel(np.ascontiguousarray(dish_uvw_m, dtype=np.float64), l, m, n1,
                   np.ascontiguousarray(beams, dtype=np.float64), dish_type.astype(np.int64),
                   np.asarray(freq_hz, dtype=np.float64), z_re, z_im)
    return z_re, z_im


def _weighted_conjugate_loop(z_re, z_im, weight, out):  # pragma: no cover - compiled
    """out[s, p] = sqrt(weight[s]) * conj(Z[p, s]): the Fortran-ordered operand of herk."""
    n_dish, n_src = z_re.shape
    for p in numba.prange(n_dish):
        for s in range(n_src):
            root = np.sqrt(weight[s])
            out[s, p] = complex(root * z_re[p, s], -root * z_im[p, s])


_weighted_conjugate_parallel = numba.njit(parallel=True, cache=True, nogil=True)(_weighted_conjugate_loop)
_weighted_conjugate_serial = numba.njit(cache=True, nogil=True)(_weighted_conjugate_loop)


def _weighted_conjugate(z_re: np.ndarray, z_im: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """out (n_src, n_dish) = sqrt(weight) conj(Z^T) for Z (n_dish, n_src) in parts; on numba's threads from
    PARALLEL_MIN_VALUES values."""
    kernel = _weighted_conjugate_parallel if z_re.size >= PARALLEL_MIN_VALUES else _weighted_conjugate_serial
    kernel(z_re, z_im, weight, out)


def _stokes_sums_blas(z_re: np.ndarray, z_im: np.ndarray, stokes: np.ndarray, n_stokes: int, complex_dtype: type) -> list[np.ndarray]:
    """Per Stokes parameter the (n_dish, n_dish) upper triangle of sum_s X_s Z_p conj(Z_q).

    herk needs non-negative weights, so X is split into its positive and negative parts.
    """
    from scipy.linalg import blas  # only runs without smearing come here: the default run does not load scipy.linalg
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
    buffers: PackingBuffers | None = None,
    parallactic_rad: float | None = None,
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
        buffers: the smearing kernel's memory, reused from step to step by a caller that keeps it (or None).
        parallactic_rad: the step's parallactic angle, at which terms.jones (when set) gives the beams.
    """
    real_dtype = np.float32 if dtype == np.complex64 else np.float64
    n_stokes = 4 if np.any(terms.stokes[:, 1:, :]) else 1
    if terms.jones is not None:
        if parallactic_rad is None:
            raise ValueError("beams that turn on the sky (terms.jones) need the step's parallactic angle")
        return _predict_jones(dish_uvw_m, terms, dish_type, freq_hz, ant1, ant2, channel_width_hz, dish_delay_rate,
                              interval_s, dtype, buffers, parallactic_rad, n_stokes)
    n_chan, n_src = len(freq_hz), len(terms.lmn)
    smear_time = dish_delay_rate is not None and interval_s > 0
    smear = channel_width_hz > 0 or smear_time
    # Point sources go through BLAS unless smearing makes every source baseline-dependent.
    kernel_start = n_src if not smear and terms.n_point == n_src else (0 if smear else terms.n_point)
    if kernel_start < n_src:
        rest = slice(kernel_start, n_src)
        sums = weighted_baseline_sums(
            dish_uvw_m, terms.lmn[rest], terms.beams[:, :, rest], dish_type, freq_hz, terms.stokes[:, :, rest], n_stokes,
            ant1, ant2, channel_width_hz, dish_delay_rate[:, rest] if smear_time else None, interval_s,
            terms.gaussian[rest], real_dtype, buffers)
    elif kernel_start > 0:
        return _predict_points(dish_uvw_m, terms, dish_type, freq_hz, ant1, ant2, real_dtype, dtype, n_stokes)
    else:
        sums = np.zeros((len(ant1), n_chan, 4), dtype=np.complex128)
    if kernel_start > 0:
        points = slice(0, kernel_start)
        for k in range(n_chan):  # one channel's phasors at a time: memory does not grow with the channels
            z_re, z_im = dish_phasors(dish_uvw_m, terms.lmn[points], terms.beams[:, k:k + 1, points], dish_type,
                                      freq_hz[k:k + 1], real_dtype)
            matrices = _stokes_sums_blas(z_re[0], z_im[0], terms.stokes[k, :, points], n_stokes, dtype)
            for x, matrix in enumerate(matrices):
                _add_baselines(sums, k, x, matrix, ant1, ant2)
    vis = np.empty(sums.shape, dtype=dtype)
    _linear_correlations(sums, ant1 == ant2, vis)
    return vis


def _predict_points(dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray,
                    ant1: np.ndarray, ant2: np.ndarray, real_dtype: type, dtype: type, n_stokes: int) -> np.ndarray:
    """predict_time_step's visibilities, (n_baseline, n_chan, 4), of a sky of point sources only without smearing:
    per channel the BLAS Stokes sums, turned into each baseline's correlations in one pass (_point_correlations:
    the values of the general path's sums and _linear_correlations, without their (n_baseline, n_chan, 4) sums)."""
    vis = np.empty((len(ant1), len(freq_hz), 4), dtype=dtype)
    auto = ant1 == ant2
    for k in range(len(freq_hz)):  # one channel's phasors at a time: memory does not grow with the channels
        z_re, z_im = dish_phasors(dish_uvw_m, terms.lmn, terms.beams[:, k:k + 1], dish_type, freq_hz[k:k + 1], real_dtype)
        matrices = np.stack(_stokes_sums_blas(z_re[0], z_im[0], terms.stokes[k], n_stokes, dtype))
        _point_correlations(matrices, ant1, ant2, auto, k, vis)
    return vis


def _predict_jones(dish_uvw_m: np.ndarray, terms: SourceTerms, dish_type: np.ndarray, freq_hz: np.ndarray,
                   ant1: np.ndarray, ant2: np.ndarray, channel_width_hz: float, dish_delay_rate: np.ndarray | None,
                   interval_s: float, dtype: type, buffers: PackingBuffers | None, parallactic_rad: float,
                   n_stokes: int) -> np.ndarray:
    """predict_time_step's visibilities, (n_baseline, n_chan, 4), with H and V beams (terms.jones) at the step's
    parallactic angle: every source through the per-baseline kernel, one sum per row of JONES_TERMS (two for a
    Stokes I sky)."""
    rows = UNPOLARISED if n_stokes == 1 else list(range(len(JONES_TERMS)))
    sums = weighted_baseline_sums(
        dish_uvw_m, terms.lmn, terms.jones.at(parallactic_rad), dish_type, freq_hz, terms.stokes, n_stokes, ant1, ant2,
        channel_width_hz, dish_delay_rate, interval_s, terms.gaussian,
        np.float32 if dtype == np.complex64 else np.float64, buffers, terms=JONES_TERMS[rows])
    auto = ant1 == ant2
    sums[auto] = sums[auto].real  # sum_s X_s E_a,p E_b,p is real: the imaginary parts are round-off
    return (sums @ JONES_COEFFICIENTS[rows]).astype(dtype)


@numba.njit(cache=True, nogil=True)
def _add_baselines(sums, k, x, matrix, ant1, ant2):  # pragma: no cover - compiled
    """sums[b, k, x] += matrix[ant1[b], ant2[b]] for every baseline b: NumPy's gather and add without their
    temporaries (the same sums)."""
    for b in range(len(ant1)):
        sums[b, k, x] += matrix[ant1[b], ant2[b]]


@numba.njit(cache=True, nogil=True)
def _put_correlations(i, q, u, v, auto, out):  # pragma: no cover - compiled
    """out[:] = [XX, XY, YX, YY] = [I + Q, U + iV, U - iV, I - Q] of one baseline and channel's Stokes sums
    (complex128), in the precision of out (4,); with `auto` (an autocorrelation) of their real parts only."""
    if auto:
        i, q, u, v = complex(i.real, 0.0), complex(q.real, 0.0), complex(u.real, 0.0), complex(v.real, 0.0)
    out[0] = i + q
    out[1] = complex(u.real - v.imag, u.imag + v.real)
    out[2] = complex(u.real + v.imag, u.imag - v.real)
    out[3] = i - q


@numba.njit(cache=True, nogil=True)
def _point_correlations(matrices, ant1, ant2, auto, k, out):  # pragma: no cover - compiled
    """out[b, k] = the correlations (as _linear_correlations) of the Stokes sums matrices[x, ant1[b], ant2[b]]
    (x < n_stokes; the others 0), each first added to a complex128 zero as the general path's sums are."""
    n_stokes = matrices.shape[0]
    zero = complex(0.0, 0.0)
    for b in range(len(ant1)):
        p, q_dish = ant1[b], ant2[b]
        i = zero + matrices[0, p, q_dish]
        q = zero + matrices[1, p, q_dish] if n_stokes > 1 else zero
        u = zero + matrices[2, p, q_dish] if n_stokes > 2 else zero
        v = zero + matrices[3, p, q_dish] if n_stokes > 3 else zero
        _put_correlations(i, q, u, v, auto[b], out[b, k])


@numba.njit(parallel=True, cache=True, nogil=True)
def _linear_correlations(sums, auto, out):  # pragma: no cover - compiled
    """out[b, k] = [XX, XY, YX, YY] = [I + Q, U + iV, U - iV, I - Q] of the Stokes sums sums[b, k] = [I, Q, U, V]
    (complex128, (n_baseline, n_chan, 4)), in the precision of out. Rows with auto[b] (autocorrelations) keep the
    real parts of the sums only: sum_s X_s |Z_p|^2 is real, the imaginary parts are round-off."""
    n_baseline, n_chan, _ = sums.shape
    for b in numba.prange(n_baseline):
        for k in range(n_chan):
            _put_correlations(sums[b, k, 0], sums[b, k, 1], sums[b, k, 2], sums[b, k, 3], auto[b], out[b, k])
