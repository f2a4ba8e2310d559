"""Per-baseline source sums with baseline-dependent weights (bandwidth and time smearing, Gaussian envelopes).

V_pq[k, c] = sum_s W_pq[k, s] X[k, x_c, s] Z[k, a_c, p, s] conj(Z[k, b_c, q, s]), for each term c of a Stokes parameter
x_c seen by polarisation a_c of dish p and b_c of dish q, with Z[k, a, p, s] = E_a,p exp(+2 pi i f_k tau_p(s)) the
per-dish phasor of polarisation a (one polarisation, a = b = 0 for every term, when the beams are the same in H and V:
the terms are then the Stokes parameters) and W the product of the real weights that depend on the baseline:
- bandwidth smearing sinc(x_p - x_q), x_p = pi * channel_width * tau_p (the same for every channel);
- time smearing sinc(pi f_k interval (dtau_p/dt - dtau_q/dt));
- a Gaussian source's envelope exp(-pi^2 / (4 ln 2) (major^2 a^2 + minor^2 c^2)) at the baseline's (u, v) in
  wavelengths, rotated by the position angle.
The sines of both sincs come from per-dish sines and cosines, sin(a_p - a_q) = sin a_p cos a_q - cos a_p sin a_q,
so that no sine is evaluated per baseline (a series where the difference is small).

The work is cut into tiles of SOURCE_TILE sources x CHANNEL_TILE channels. For one tile the per-dish terms of
every dish (phasors, the Stokes-weighted phasors, smearing phases) are packed, a few kB per dish, so that every
baseline reads them from cache; baselines are taken in pairs that share their first dish, so that the first
dish's terms are loaded once for two baselines. Tiles are packed and summed in groups (up to
sizing.PACKED_TERMS_BYTES of packed terms): one parallel call packs a group, one sums it, each thread going
through the group's tiles for its own chunk of baseline pairs, so that threads meet twice per group rather than
twice per tile, and no Python runs between tiles. A tile's sums go to float64 accumulators in a fixed
order (tile after tile for each baseline), so the result does not depend on the number of threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from srcnet_sim.sizing import PACKED_TERMS_BYTES
from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.simulate.vecmath import (exp_nonpositive, exp_nonpositive_single, phasor_row_double, phasor_row_single,
                                         sincos_turns, sincos_turns_single)

GAUSS_ENVELOPE = np.pi**2 / (4.0 * np.log(2.0))
SOURCE_TILE = 256  # sources per tile: the packed terms of all 144 AA* dishes (~3 MB with 4 channels) stay in L3
CHANNEL_TILE = 4  # channels per tile: the bandwidth-smearing weight is shared by the tile's channels
Q_FIELDS = 4  # per-dish rows before the phasors: x, sin x, cos x, delay rate (s/s)
SCALAR_TERMS = np.zeros((4, 3), dtype=np.int64)  # terms of beams the same in H and V: Stokes x, polarisations 0, 0
SCALAR_TERMS[:, 0] = np.arange(4)
# The sincs' series sinc(d) = 1 - d^2/6 + d^4/120 - d^6/5040 (coefficients, then the |d| below which it is used;
# see _sinc_of_difference). Above it the sine comes from the dishes' sines and cosines, whose error (float32 6e-7,
# float64 2e-13) the division by d amplifies. Bandwidth smearing: below 0.05, without the d^6 term.
TAYLOR_SINC = (1.0, 1.0 / 6.0, 1.0 / 120.0, 0.0, 0.05)
# Time smearing, by the terms' itemsize: float32 terms switch at 0.8, where the series' error (d^8/9!, 5e-7) and the
# product's are both below 8e-7; float64 terms at 0.1 (3e-14 and 2e-12). d comes from the dishes' delay rates in the
# terms' precision.
TAYLOR_SINC_TIME = {4: (1.0, 1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0, 0.8),
                    8: (1.0, 1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0, 0.1)}


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _pack_dish(p, dish_uvw_m, l, m, n1, beams, dish_type, freq_hz, stokes, terms, bw_turns_per_m, rate,
               half_interval, s0, n_s, q_terms, p_terms):  # pragma: no cover - compiled
    """Dish p's terms of the tile of sources [s0, s0 + n_s) (the tile's channels are all of freq_hz).

    beams: (n_type, n_pol, n_k, n_src). terms: (n_term, 3) [Stokes x, polarisation of p, polarisation of q].
    q_terms: (n_dish, Q_FIELDS + 2 n_pol n_k [+ 2 n_k], SOURCE_TILE): x, sin x, cos x, rate, then Re Z and Im Z of
    each channel for each polarisation (re at Q_FIELDS + 2 a n_k + k, im at Q_FIELDS + (2 a + 1) n_k + k), then
    (time smearing: half_interval > 0) the sine and cosine of 2 pi half_interval f_k rate of each channel.
    p_terms: (n_dish, 2 n_k n_term, SOURCE_TILE): Re and Im of X[k, x_c] Z[k, a_c] for term c and channel k.
    Only the first n_s sources of each row are written. Sines and cosines are evaluated in the precision of
    q_terms (float32 series for float32 terms).
    """
    n_k = len(freq_hz)
    n_pol = beams.shape[1]
    single = q_terms.itemsize == 4
    s1 = s0 + n_s
    u, v, w = dish_uvw_m[p, 0], dish_uvw_m[p, 1], dish_uvw_m[p, 2]
    t = dish_type[p]
    tl, tm, tn = l[s0:s1], m[s0:s1], n1[s0:s1]
    x, sin_x, cos_x, rate_p = q_terms[p, 0, :n_s], q_terms[p, 1, :n_s], q_terms[p, 2, :n_s], q_terms[p, 3, :n_s]
    if single:
        phasor_row_single(u, v, w, tl, tm, tn, bw_turns_per_m, None, sin_x, cos_x)
    else:
        phasor_row_double(u, v, w, tl, tm, tn, bw_turns_per_m, None, sin_x, cos_x)
    for s in range(n_s):
        x[s] = 2.0 * np.pi * bw_turns_per_m * (u * tl[s] + v * tm[s] + w * tn[s])
        rate_p[s] = rate[p, s0 + s] if rate.shape[0] > 0 else 0.0
    for k in range(n_k):
        scale = freq_hz[k] / SPEED_OF_LIGHT_M_S
        for a in range(n_pol):
            z_re, z_im = q_terms[p, Q_FIELDS + 2 * a * n_k + k, :n_s], q_terms[p, Q_FIELDS + (2 * a + 1) * n_k + k, :n_s]
            if single:
                phasor_row_single(u, v, w, tl, tm, tn, scale, beams[t, a, k, s0:s1], z_im, z_re)
            else:
                phasor_row_double(u, v, w, tl, tm, tn, scale, beams[t, a, k, s0:s1], z_im, z_re)
        for c in range(len(terms)):
            a = terms[c, 1]
            z_re, z_im = q_terms[p, Q_FIELDS + 2 * a * n_k + k, :n_s], q_terms[p, Q_FIELDS + (2 * a + 1) * n_k + k, :n_s]
            y_re, y_im = p_terms[p, 2 * (c * n_k + k)], p_terms[p, 2 * (c * n_k + k) + 1]
            weight = stokes[k, terms[c, 0], s0:s1]
            for s in range(n_s):
                y_re[s] = weight[s] * z_re[s]
                y_im[s] = weight[s] * z_im[s]
        if half_interval > 0:
            turns = half_interval * freq_hz[k]
            smear_row = Q_FIELDS + 2 * n_pol * n_k + k
            sin_t, cos_t = q_terms[p, smear_row, :n_s], q_terms[p, smear_row + n_k, :n_s]
            if single:
                for s in range(n_s):
                    sin_t[s], cos_t[s] = sincos_turns_single(turns * rate[p, s0 + s])
            else:
                for s in range(n_s):
                    sin_t[s], cos_t[s] = sincos_turns(turns * rate[p, s0 + s])


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _sinc_of_difference(scale, a_p, sin_p, cos_p, a_q, sin_q, cos_q, taylor, n_s, base, out):  # pragma: no cover
    """out[s] = base[s] * sinc(d), d = scale (a_p[s] - a_q[s]) (base None: 1), for one baseline (dishes p, q).

    sin d = sin_p cos_q - cos_p sin_q from the dishes' packed sines and cosines of scale * a, so that no sine is
    evaluated per baseline; below |d| = taylor[4], where that difference of products cancels, the series of
    taylor[:4] (TAYLOR_SINC or TAYLOR_SINC_TIME in the precision of the terms: no constant promotes float32 to
    float64). Evaluated in the precision of `scale`.
    """
    for s in range(n_s):
        d = scale * (a_p[s] - a_q[s])
        d2 = d * d
        series = taylor[0] - d2 * (taylor[1] - d2 * (taylor[2] - d2 * taylor[3]))
        sinc = series if abs(d) < taylor[4] else (sin_p[s] * cos_q[s] - cos_p[s] * sin_q[s]) / d
        out[s] = sinc if base is None else base[s] * sinc


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _gaussian_exponent(du_m, dv_m, gaussian, n_s, out):  # pragma: no cover - compiled
    """out[s] = ln(envelope) / f^2 of each source for a baseline (du, dv) in metres (0 for point sources).

    gaussian: (4, >= n_s) [major^2, minor^2, sin pa, cos pa] of the tile's sources; the envelope at frequency f is
    exp(out[s] * f^2).
    """
    for s in range(n_s):
        a = (du_m * gaussian[2, s] + dv_m * gaussian[3, s]) / SPEED_OF_LIGHT_M_S
        c = (du_m * gaussian[3, s] - dv_m * gaussian[2, s]) / SPEED_OF_LIGHT_M_S
        out[s] = -GAUSS_ENVELOPE * (gaussian[0, s] * a * a + gaussian[1, s] * c * c)


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _channel_weight(base, q_p, q_q, k, n_k, n_pol, half_interval_f, time_taylor, exponent, f2, smear_time, gaussians,
                    n_s, out):  # pragma: no cover - compiled
    """out[s] = base[s] * time-smearing sinc * Gaussian envelope, for one baseline (dishes p, q) and channel k.

    q_p, q_q: the dishes' packed terms (see _pack_dish), of n_pol polarisations. The time-smearing sinc is that of d = 2 pi half_interval_f
    (rate_p - rate_q), from the packed sines and cosines (_sinc_of_difference with time_taylor).
    exponent: _gaussian_exponent of the baseline, f2 = f^2 in Hz^2; smear_time, gaussians: which of the two factors
    apply (one loop each: a branch inside the loop stops it vectorising).
    """
    if smear_time:
        rate_p, rate_q = q_p[3], q_q[3]
        row = Q_FIELDS + 2 * n_pol * n_k + k
        sp, cp = q_p[row], q_p[row + n_k]
        sq, cq = q_q[row], q_q[row + n_k]
        if out.itemsize == 4:  # d and its division in float32 too: twice the SIMD lanes
            scale = np.float32(2.0 * np.pi * half_interval_f)
            _sinc_of_difference(scale, rate_p, sp, cp, rate_q, sq, cq, time_taylor, n_s, base, out)
        else:
            _sinc_of_difference(2.0 * np.pi * half_interval_f, rate_p, sp, cp, rate_q, sq, cq, time_taylor, n_s, base, out)
    else:
        for s in range(n_s):  # (a slice assignment here is lost inside numba's prange body)
            out[s] = base[s]
    if gaussians and out.itemsize == 4:  # float32 weights: an exp to their accuracy
        for s in range(n_s):
            out[s] *= exp_nonpositive_single(exponent[s] * f2)
    elif gaussians:
        for s in range(n_s):
            out[s] *= exp_nonpositive(exponent[s] * f2)


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _pair_sums(i, q_terms, p_terms, terms, n_pol, pol_free, alias, pairs, ant1, ant2, uvw_m, freq_hz, half_interval,
               gaussian, gaussians, n_s, k0, taylor, time_taylor, buffers, out):  # pragma: no cover - compiled
    """Add the sums of the tile's n_s sources to out[b, k0 + k, c] for the baselines of pair i and each term c.

    When the pair's three dishes are pol_free (the same pattern in H and V), a term whose alias[c] >= 0 (an earlier
    term of the same Stokes parameter through polarisations 0, 0) has the same sum as that term, and is skipped:
    weighted_baseline_sums copies it (half the work on SKA-SKA baselines of a Stokes I sky). When only the second
    dishes are pol_free, every term reads the same rows of them: two terms (a Stokes I sky's XX and YY) are summed in
    one pass (_fused_xx_yy)."""
    n_k = len(freq_hz)
    zero = q_terms[0, 0, 0] - q_terms[0, 0, 0]  # not `* 0`: float32 * int is float64 in numba
    smear_time = half_interval > 0
    b1 = pairs[i, 0]
    b2 = pairs[i, 1] if pairs[i, 1] >= 0 else b1
    p, q1, q2 = ant1[b1], ant2[b1], ant2[b2]
    reuse = pol_free[p] and pol_free[q1] and pol_free[q2]
    fuse = not reuse and pol_free[q1] and pol_free[q2] and len(terms) == 2
    w1, w2, k1, k2 = buffers[0, :n_s], buffers[1, :n_s], buffers[2, :n_s], buffers[3, :n_s]
    g1, g2 = buffers[4, :n_s], buffers[5, :n_s]
    one = taylor[0]  # the bandwidth sinc's d is x_p - x_q itself, in the precision of the terms
    x_p, sin_p, cos_p = q_terms[p, 0], q_terms[p, 1], q_terms[p, 2]
    _sinc_of_difference(one, x_p, sin_p, cos_p, q_terms[q1, 0], q_terms[q1, 1], q_terms[q1, 2], taylor, n_s, None, w1)
    _sinc_of_difference(one, x_p, sin_p, cos_p, q_terms[q2, 0], q_terms[q2, 1], q_terms[q2, 2], taylor, n_s, None, w2)
    if gaussians:
        _gaussian_exponent(uvw_m[p, 0] - uvw_m[q1, 0], uvw_m[p, 1] - uvw_m[q1, 1], gaussian, n_s, g1)
        _gaussian_exponent(uvw_m[p, 0] - uvw_m[q2, 0], uvw_m[p, 1] - uvw_m[q2, 1], gaussian, n_s, g2)
    for k in range(n_k):
        if smear_time or gaussians:
            f = freq_hz[k]
            _channel_weight(w1, q_terms[p], q_terms[q1], k, n_k, n_pol, half_interval * f, time_taylor, g1, f * f,
                            smear_time, gaussians, n_s, k1)
            _channel_weight(w2, q_terms[p], q_terms[q2], k, n_k, n_pol, half_interval * f, time_taylor, g2, f * f,
                            smear_time, gaussians, n_s, k2)
        else:
            k1, k2 = w1, w2
        if fuse:
            _fused_xx_yy(q_terms, p_terms, p, q1, q2, b1, b2, k, k0, n_k, n_s, k1, k2, zero, out)
            continue
        for x in range(len(terms)):
            if reuse and alias[x] >= 0:
                continue
            b = terms[x, 2]
            q1_re, q1_im = q_terms[q1, Q_FIELDS + 2 * b * n_k + k], q_terms[q1, Q_FIELDS + (2 * b + 1) * n_k + k]
            q2_re, q2_im = q_terms[q2, Q_FIELDS + 2 * b * n_k + k], q_terms[q2, Q_FIELDS + (2 * b + 1) * n_k + k]
            y_re, y_im = p_terms[p, 2 * (x * n_k + k)], p_terms[p, 2 * (x * n_k + k) + 1]
            a1_re = zero
            a1_im = zero
            a2_re = zero
            a2_im = zero
            for s in range(n_s):
                yr = y_re[s]
                yi = y_im[s]
                a1_re += k1[s] * (yr * q1_re[s] + yi * q1_im[s])
                a1_im += k1[s] * (yi * q1_re[s] - yr * q1_im[s])
                a2_re += k2[s] * (yr * q2_re[s] + yi * q2_im[s])
                a2_im += k2[s] * (yi * q2_re[s] - yr * q2_im[s])
            out[b1, k0 + k, x, 0] += a1_re
            out[b1, k0 + k, x, 1] += a1_im
            if b2 != b1:
                out[b2, k0 + k, x, 0] += a2_re
                out[b2, k0 + k, x, 1] += a2_im


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _fused_xx_yy(q_terms, p_terms, p, q1, q2, b1, b2, k, k0, n_k, n_s, k1, k2, zero, out):  # pragma: no cover
    """_pair_sums' two terms 0 and 1 of channel k in one pass over the sources, when the second dishes q1, q2 have the
    same pattern in H and V (their polarisation-0 rows serve both terms: they are equal to the polarisation-1 rows)."""
    q1_re, q1_im = q_terms[q1, Q_FIELDS + k], q_terms[q1, Q_FIELDS + n_k + k]
    q2_re, q2_im = q_terms[q2, Q_FIELDS + k], q_terms[q2, Q_FIELDS + n_k + k]
    h_re, h_im = p_terms[p, 2 * k], p_terms[p, 2 * k + 1]
    v_re, v_im = p_terms[p, 2 * (n_k + k)], p_terms[p, 2 * (n_k + k) + 1]
    h1_re = zero
    h1_im = zero
    h2_re = zero
    h2_im = zero
    v1_re = zero
    v1_im = zero
    v2_re = zero
    v2_im = zero
    for s in range(n_s):
        hr, hi, vr, vi = h_re[s], h_im[s], v_re[s], v_im[s]
        c1r, c1i, c2r, c2i = k1[s] * q1_re[s], k1[s] * q1_im[s], k2[s] * q2_re[s], k2[s] * q2_im[s]
        h1_re += hr * c1r + hi * c1i
        h1_im += hi * c1r - hr * c1i
        h2_re += hr * c2r + hi * c2i
        h2_im += hi * c2r - hr * c2i
        v1_re += vr * c1r + vi * c1i
        v1_im += vi * c1r - vr * c1i
        v2_re += vr * c2r + vi * c2i
        v2_im += vi * c2r - vr * c2i
    out[b1, k0 + k, 0, 0] += h1_re
    out[b1, k0 + k, 0, 1] += h1_im
    out[b1, k0 + k, 1, 0] += v1_re
    out[b1, k0 + k, 1, 1] += v1_im
    if b2 != b1:
        out[b2, k0 + k, 0, 0] += h2_re
        out[b2, k0 + k, 0, 1] += h2_im
        out[b2, k0 + k, 1, 0] += v2_re
        out[b2, k0 + k, 1, 1] += v2_im


@numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True, nogil=True)
def _pack_group(dish_uvw_m, l, m, n1, beams, dish_type, freq_hz, stokes, terms, bw_turns_per_m, rate, half_interval,
                g0, q_terms, p_terms):  # pragma: no cover - compiled
    """Pack the per-dish terms of a group of source tiles (sources from g0 on), in parallel over tiles x dishes.

    l, m, n1: (n_src,) direction cosines. beams: (n_type, n_pol, n_k, n_src); stokes: (n_k, 4, n_src) in the
    precision of the terms; terms: (n_term, 3) [Stokes, polarisation of p, of q]; rate: (n_dish, n_src) delay rates,
    s/s, or (0, 0) without time smearing; half_interval: half the integration time, s, with time smearing, else 0.
    q_terms: (n_tiles, n_dish, Q_FIELDS + 2 n_pol n_k [+ 2 n_k], SOURCE_TILE);
    p_terms: (n_tiles, n_dish, 2 n_k n_term, SOURCE_TILE) (see _pack_dish).
    """
    n_tiles, n_dish, _, tile = q_terms.shape
    for j in numba.prange(n_tiles * n_dish):
        t, p = j // n_dish, j % n_dish
        s0 = g0 + t * tile
        _pack_dish(p, dish_uvw_m, l, m, n1, beams, dish_type, freq_hz, stokes, terms, bw_turns_per_m, rate,
                   half_interval, s0, min(tile, len(l) - s0), q_terms[t], p_terms[t])


@numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True, nogil=True)
def _group_sums(q_terms, p_terms, n_src, terms, n_pol, pol_free, alias, pairs, chunks, ant1, ant2, uvw_m, freq_hz,
                half_interval, gaussian, tile_has_gaussians, k0, taylor, time_taylor, scratch,
                out):  # pragma: no cover - compiled
    """Add the sums of a packed group of source tiles to out[b, k0 + k, c] for every baseline and term c.

    Each thread takes a chunk of pairs of baselines (chunks: (n_chunk + 1,) boundaries into pairs) and goes
    through the group tile by tile, so that no thread waits for another between tiles.
    n_src: sources in the group (the last tile may be partial). pairs: (n_pair, 2) baseline indices sharing
    ant1; the second is -1 when the row has no partner. half_interval: half the integration time, s, with time
    smearing, else 0. gaussian: (n_tiles, 4, SOURCE_TILE) [major^2, minor^2, sin pa, cos pa] per tile;
    tile_has_gaussians: (n_tiles,) whether a tile holds any Gaussian. taylor, time_taylor: TAYLOR_SINC and
    TAYLOR_SINC_TIME in the precision of the terms. pol_free: (n_dish,) bool, dishes whose H and V patterns are
    the same; alias: (n_term,) the term each one equals on baselines of such dishes, or -1 (see _pair_sums).
    scratch: (threads, 6, SOURCE_TILE) weight buffers per thread.
    out: (n_baseline, n_chan, n_term, 2) float64.
    """
    n_tiles, _, _, tile = q_terms.shape
    for c in numba.prange(len(chunks) - 1):
        buffers = scratch[numba.get_thread_id()]
        for t in range(n_tiles):
            n_s = min(tile, n_src - t * tile)
            for i in range(chunks[c], chunks[c + 1]):
                _pair_sums(i, q_terms[t], p_terms[t], terms, n_pol, pol_free, alias, pairs, ant1, ant2, uvw_m, freq_hz,
                           half_interval, gaussian[t], tile_has_gaussians[t], n_s, k0, taylor, time_taylor, buffers,
                           out)


class PackingBuffers:
    """Memory for the packed terms of a group of tiles and the threads' weight buffers, reused from call to call (a
    block's time steps): arrays of the packed terms' size are otherwise fresh pages from the kernel at every
    allocation, zeroed and faulted in (~5 % of a step on one core here)."""

    def __init__(self) -> None:
        self._flat: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """An uninitialised C-ordered array of `shape` and `dtype`, the memory of the last one of that name when it
        is large enough."""
        size = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.dtype != dtype or flat.size < size:
            flat = self._flat[name] = np.empty(size, dtype=dtype)
        return flat[:size].reshape(shape)


def _polarisation_shortcuts(beams: np.ndarray, dish_type: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_dish,) bool, the dishes whose H and V patterns are the same (beams: (n_type, n_pol, n_chan, n_src)), and
    (n_term,) for each term the earlier term of its Stokes parameter through polarisations 0, 0, or -1."""
    same = np.array([all(np.array_equal(beams[t, 0], beams[t, a]) for a in range(beams.shape[1]))
                     for t in range(beams.shape[0])])
    alias = np.full(len(terms), -1, dtype=np.int64)
    for c, (x, a, b) in enumerate(terms):
        if a or b:
            earlier = [j for j in range(c) if terms[j, 0] == x and terms[j, 1] == 0 and terms[j, 2] == 0]
            alias[c] = earlier[0] if earlier else -1
    return same[dish_type], alias


def baseline_pairs_sharing_ant1(ant1: np.ndarray) -> np.ndarray:
    """(n_pair, 2) indices of consecutive baselines with the same first dish; -1 where a row has an odd one out."""
    index = np.arange(len(ant1))
    row_start = np.maximum.accumulate(np.where(np.r_[True, ant1[1:] != ant1[:-1]], index, 0))
    first = index[(index - row_start) % 2 == 0]
    second = first + 1
    partnered = (second < len(ant1)) & (ant1[np.minimum(second, len(ant1) - 1)] == ant1[first])
    return np.stack([first, np.where(partnered, second, -1)], axis=-1).astype(np.int64)


def weighted_baseline_sums(dish_uvw_m: np.ndarray, lmn: np.ndarray, beams: np.ndarray, dish_type: np.ndarray,
                           freq_hz: np.ndarray, stokes: np.ndarray, n_stokes: int, ant1: np.ndarray, ant2: np.ndarray,
                           channel_width_hz: float, dish_delay_rate: np.ndarray | None, interval_s: float,
                           gaussian: np.ndarray, real_dtype: type, buffers: PackingBuffers | None = None,
                           terms: np.ndarray | None = None) -> np.ndarray:
    """Sums per baseline of each term, (n_baseline, n_chan, 4) complex128 for the Stokes parameters (beams the same
    in H and V, terms None; Stokes beyond n_stokes are zero), or (n_baseline, n_chan, n_term) for `terms`.

    Args:
        dish_uvw_m: (n_dish, 3) per-dish UVW, metres. lmn: (n_src, 3) direction cosines (l, m, n - 1).
        beams: (n_type, n_chan, n_src) voltage beams, or (n_type, n_pol, n_chan, n_src) per polarisation (with
            terms); dish_type: (n_dish,) index into beams.
        freq_hz: (n_chan,) channel centres. stokes: (n_chan, 4, n_src) Jy; the first n_stokes are used.
        ant1, ant2: (n_baseline,) dish indices, ordered by ant1 (pairs sharing ant1 are found in that order).
        channel_width_hz: > 0 applies bandwidth smearing. dish_delay_rate: (n_dish, n_src) d(tau)/dt, with
            interval_s > 0 applies time smearing, or None.
        gaussian: (n_src, 4) [major^2, minor^2, sin pa, cos pa] (FWHM in rad), zero rows for point sources.
        real_dtype: float32 or float64, the precision of the per-tile sums.
        buffers: memory for the packed terms to reuse (the caller's, kept between time steps), or None for new.
        terms: (n_term, 3) int [Stokes x, polarisation of the first dish, of the second] of each sum, or None: the
            first n_stokes Stokes parameters through polarisation 0.
    """
    buffers = buffers or PackingBuffers()
    n_dish, n_src, n_chan = len(dish_uvw_m), len(lmn), len(freq_hz)
    uvw64 = np.ascontiguousarray(dish_uvw_m, dtype=np.float64)
    l, m, n1 = (np.ascontiguousarray(lmn[:, axis], dtype=np.float64) for axis in range(3))
    beams64 = np.asarray(beams, dtype=np.float64)
    if terms is None:
        beams64, terms, n_out = beams64[:, None], SCALAR_TERMS[:n_stokes], 4
    else:
        n_out = len(terms)
    terms = np.ascontiguousarray(terms, dtype=np.int64)
    n_pol = beams64.shape[1]
    pol_free, alias = _polarisation_shortcuts(beams64, np.asarray(dish_type), terms)
    stokes_real = np.asarray(stokes, dtype=real_dtype)
    types = np.asarray(dish_type, dtype=np.int64)
    freq64 = np.asarray(freq_hz, dtype=np.float64)
    smear_time = dish_delay_rate is not None and interval_s > 0
    rate = np.ascontiguousarray(dish_delay_rate, dtype=np.float64) if smear_time else np.zeros((0, 0))
    half_interval = 0.5 * interval_s if smear_time else 0.0
    n_tiles = -(-n_src // SOURCE_TILE)
    padded = np.zeros((n_tiles * SOURCE_TILE, 4))  # the last tile zero-padded
    padded[:n_src] = gaussian
    gaussian_tiles = np.ascontiguousarray(padded.reshape(n_tiles, SOURCE_TILE, 4).transpose(0, 2, 1))
    pairs = baseline_pairs_sharing_ant1(ant1)
    taylor = np.array(TAYLOR_SINC, dtype=real_dtype)
    time_taylor = np.array(TAYLOR_SINC_TIME[np.dtype(real_dtype).itemsize], dtype=real_dtype)
    scratch = buffers.array("weights", (numba.config.NUMBA_NUM_THREADS, 6, SOURCE_TILE), real_dtype)
    out = np.zeros((len(ant1), n_chan, n_out, 2))
    bw_turns_per_m = 0.5 * channel_width_hz / SPEED_OF_LIGHT_M_S  # x / (2 pi) per metre of delay
    tile_has_gaussians = np.any(gaussian_tiles[:, 0], axis=1)
    threads = numba.get_num_threads()
    chunks = np.linspace(0, len(pairs), threads + 1).round().astype(np.int64)
    for k0 in range(0, n_chan, CHANNEL_TILE):
        channels = slice(k0, min(k0 + CHANNEL_TILE, n_chan))
        n_k = channels.stop - k0
        q_fields, p_fields = Q_FIELDS + (2 * n_pol + (2 if smear_time else 0)) * n_k, 2 * n_k * len(terms)
        group = max(1, PACKED_TERMS_BYTES // (n_dish * (q_fields + p_fields) * SOURCE_TILE * np.dtype(real_dtype).itemsize))
        beams_k, stokes_k = np.ascontiguousarray(beams64[:, :, channels]), np.ascontiguousarray(stokes_real[channels])
        for t0 in range(0, n_tiles, group):
            tiles = slice(t0, min(t0 + group, n_tiles))
            g0, n_in_group = t0 * SOURCE_TILE, min(n_src - t0 * SOURCE_TILE, group * SOURCE_TILE)
            q_terms = buffers.array("q", (tiles.stop - t0, n_dish, q_fields, SOURCE_TILE), real_dtype)
            p_terms = buffers.array("p", (tiles.stop - t0, n_dish, p_fields, SOURCE_TILE), real_dtype)
            _pack_group(uvw64, l, m, n1, beams_k, types, freq64[channels], stokes_k, terms, bw_turns_per_m, rate,
                        half_interval, g0, q_terms, p_terms)
            _group_sums(q_terms, p_terms, n_in_group, terms, n_pol, pol_free, alias, pairs, chunks, ant1, ant2, uvw64, freq64[channels],
                        half_interval, gaussian_tiles[tiles], tile_has_gaussians[tiles], k0, taylor, time_taylor,
                        scratch, out)
    free = pol_free[ant1] & pol_free[ant2]
    for c in np.flatnonzero(alias >= 0):  # the terms skipped on baselines of dishes the same in H and V
        out[free, :, c] = out[free, :, alias[c]]
    return out.view(np.complex128).reshape(out.shape[:-1])
