"""The per-baseline CUDA kernel of the GPU predictor (numba.cuda; runs in numba's CUDA simulator in CI).

It computes, for every dish pair p <= q, every channel k and Stokes parameter x,
    S[t, k, x, p, q] = sum_s w_pq(s, k) X[k, x, s] Z[t, k, s, p] conj(Z[t, k, s, q])
with the baseline-dependent real weight w = bandwidth sinc * time sinc * Gaussian envelope, the
same terms and conventions as `predict._weighted_sums` on the CPU.

Layout: every per-dish array is (time, [channel,] source, dish), dish fastest, so the threads of a
warp (consecutive q) read consecutive addresses. One block owns two dish rows p1 = b and
p2 = n_dish - 1 - b (n_dish - b and b + 1 baselines: n_dish + 1 threads, no idle triangle), one
slice of the sources (grid y) and one time step with a group of CH channels (grid z). The rows'
values (Z times the Stokes weight) for a tile of TILE sources sit in shared memory; each thread
keeps its sums for the CH channels and the Stokes parameters in registers, evaluates the bandwidth
sinc once per source for all CH channels, and adds its sums to the output atomically at the end
(slices of sources meet there).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np
from numba import cuda

if not hasattr(np, "row_stack"):  # numba-cuda <= 0.30.4 overloads np.row_stack, gone in NumPy 2.5, when compiling
    np.row_stack = np.vstack

TILE = 32  # sources per shared-memory tile (default)
THREADS_MAX = 1024
GAUSS_ENVELOPE = math.pi**2 / (4.0 * math.log(2.0))


@lru_cache(maxsize=None)
def baseline_kernel(double: bool, n_stokes: int, channels_per_block: int, tile: int = TILE):
    """The compiled kernel for one precision, number of Stokes parameters (1 or 4), channel group size and
    number of sources per shared-memory tile.

    kernel[grid, threads](z, stokes, bwx, bwe, rate, half_interval_f, freq_per_c, duvw, gauss, n_point,
                          src_per_block, smear_bw, smear_t, n_chan, n_src, n_dish, out)
        z: (n_t, n_chan, n_src, n_dish) Z, complex dtype, flattened (1-D: the kernel computes one flat
            offset per source instead of four-index addressing per term; one 8- or 16-byte load per term).
        stokes: (n_chan, n_stokes, n_src) Jy, real dtype.
        bwx: (n_t, n_src, n_dish) x = pi dnu tau, real; bwe: exp(i x) (read only when smear_bw); flattened.
        rate: (n_t, n_src, n_dish) d(tau)/dt, s/s, flattened (read only when smear_t).
        half_interval_f: (n_chan,) 0.5 * interval * f_k, s Hz; freq_per_c: (n_chan,) f_k / c, 1/m.
        duvw: (n_t, n_dish, 3) per-dish UVW, m; gauss: (4, n_src) [major^2, minor^2, sin pa, cos pa].
        n_point: sources [0, n_point) are points; src_per_block: sources per grid-y slice.
        out: (n_t, n_chan, n_stokes, 2, n_dish, n_dish) real sums, added to (upper triangle).
    grid = (ceil(n_dish / 2), ceil(n_src / src_per_block), n_t * ceil(n_chan / CH)); threads >= n_dish + 1.

    The rows' tile in shared memory holds X[k, x, s] Z[p, k, s] (the Stokes weight folded into the p side,
    common to every q), so the inner loop reads one shared and one global word per term and Stokes.
    """
    real = numba.float64 if double else numba.float32
    cplx = numba.complex128 if double else numba.complex64
    u64 = numba.uint64  # array indices cast to unsigned: numba then emits no negative-index wraparound code
    ch = channels_per_block
    n_acc = ch * n_stokes * 2
    row_words = ch * n_stokes * tile  # one dish row's X Z tile in the flat shared array
    zx_words = 2 * row_words  # shared array sizes must be constants of the closure
    tile_words = 2 * tile

    @cuda.jit(fastmath=False)
    def kernel(z, stokes, bwx, bwe, rate, half_interval_f, freq_per_c, duvw, gauss, n_point, src_per_block,
               smear_bw, smear_t, n_chan, n_src, n_dish, out):  # pragma: no cover - compiled for the device
        sh_zx = cuda.shared.array(zx_words, cplx)  # [row, channel, Stokes, source]
        sh_bwx = cuda.shared.array(tile_words, real)  # [row, source]
        sh_bwe = cuda.shared.array(tile_words, cplx)
        sh_rate = cuda.shared.array(tile_words, real)
        acc = cuda.local.array(n_acc, real)
        z_base = cuda.local.array(ch, numba.int64)
        for i in range(n_acc):
            acc[i] = real(0.0)

        j = cuda.threadIdx.x
        n_threads = cuda.blockDim.x
        p1 = cuda.blockIdx.x
        p2 = n_dish - 1 - p1
        n_groups = (n_chan + ch - 1) // ch
        t = cuda.blockIdx.z // n_groups
        k0 = (cuda.blockIdx.z - t * n_groups) * ch
        for kk in range(ch):  # flat offset of (t, k, 0, 0) in z; channels past the end repeat the last
            z_base[kk] = (t * n_chan + min(k0 + kk, n_chan - 1)) * n_src * n_dish
        s_base = t * n_src * n_dish  # flat offset of (t, 0, 0) in the per-dish smearing arrays
        s_begin = cuda.blockIdx.y * src_per_block
        s_end = min(s_begin + src_per_block, n_src)
        row1 = n_dish - p1
        if j < row1:
            r = 0
            p = p1
            q = p1 + j
            active = True
        else:
            r = 1
            p = p2
            q = p2 + (j - row1)
            active = p2 > p1 and q < n_dish
        if not active:
            q = p  # a valid index; the thread only helps to load tiles
        du = real(duvw[t, p, 0] - duvw[t, q, 0])
        dv = real(duvw[t, p, 1] - duvw[t, q, 1])
        one = real(1.0)
        two_pi = real(2.0 * math.pi)

        for s0 in range(s_begin, s_end, tile):
            n_in = min(tile, s_end - s0)
            cuda.syncthreads()
            for idx in range(j, 2 * tile, n_threads):
                rr = idx // tile
                sl = idx - rr * tile
                pp = p1 if rr == 0 else p2
                if sl < n_in:
                    o = (s0 + sl) * n_dish + pp
                    if smear_bw:
                        sh_bwx[u64(idx)] = bwx[u64(s_base + o)]
                        sh_bwe[u64(idx)] = bwe[u64(s_base + o)]
                    if smear_t:
                        sh_rate[u64(idx)] = rate[u64(s_base + o)]
                    for kk in range(ch):
                        zp = z[u64(z_base[kk] + o)]
                        k = min(k0 + kk, n_chan - 1)
                        for x in range(n_stokes):
                            sh_zx[u64(rr * row_words + (kk * n_stokes + x) * tile + sl)] = zp * stokes[k, x, s0 + sl]
            cuda.syncthreads()
            if active:
                for sl in range(n_in):
                    s = s0 + sl
                    o = u64(s * n_dish + q)
                    so = u64(s_base) + o
                    w = one
                    if smear_bw:
                        # sinc(x_p - x_q), sin(x_p - x_q) = Im(exp(i x_p) conj(exp(i x_q))); Taylor series where
                        # that difference of products cancels.
                        d = sh_bwx[u64(r * tile + sl)] - bwx[so]
                        d2 = d * d
                        if abs(d) < real(0.05):
                            w = one - d2 * real(1.0 / 6.0) + d2 * d2 * real(1.0 / 120.0)
                        else:
                            ep = sh_bwe[u64(r * tile + sl)]
                            eq = bwe[so]
                            w = (ep.imag * eq.real - ep.real * eq.imag) / d
                    dr = real(0.0)
                    if smear_t:
                        dr = sh_rate[u64(r * tile + sl)] - rate[so]
                    is_gauss = s >= n_point
                    g0 = g1 = g2 = g3 = real(0.0)
                    if is_gauss:
                        g0 = gauss[0, s]
                        g1 = gauss[1, s]
                        g2 = gauss[2, s]
                        g3 = gauss[3, s]
                    for kk in range(ch):
                        k = min(k0 + kk, n_chan - 1)
                        wk = w
                        if smear_t:
                            y = half_interval_f[k] * dr  # turns
                            if abs(y) > real(1e-5):
                                wk = wk * math.sin(two_pi * y) / (two_pi * y)
                        if is_gauss:
                            ul = du * freq_per_c[k]
                            vl = dv * freq_per_c[k]
                            a = ul * g2 + vl * g3
                            c = ul * g3 - vl * g2
                            wk = wk * math.exp(-real(GAUSS_ENVELOPE) * (g0 * a * a + g1 * c * c))
                        zq = z[u64(z_base[kk]) + o]
                        qr = zq.real
                        qi = zq.imag
                        for x in range(n_stokes):
                            zx = sh_zx[u64(r * row_words + (kk * n_stokes + x) * tile + sl)]  # X Z_p; times conj(Z_q):
                            acc[(kk * n_stokes + x) * 2] += wk * (zx.real * qr + zx.imag * qi)
                            acc[(kk * n_stokes + x) * 2 + 1] += wk * (zx.imag * qr - zx.real * qi)
        if active:
            for kk in range(ch):
                k = k0 + kk
                if k < n_chan:
                    for x in range(n_stokes):
                        cuda.atomic.add(out, (t, k, x, 0, p, q), acc[(kk * n_stokes + x) * 2])
                        cuda.atomic.add(out, (t, k, x, 1, p, q), acc[(kk * n_stokes + x) * 2 + 1])

    return kernel


def launch_shape(n_dish: int, n_src: int, n_time: int, n_chan: int, channels_per_block: int,
                 src_per_block: int) -> tuple[tuple[int, int, int], int]:
    """(grid, threads) of `baseline_kernel` for the given sizes."""
    threads = 32 * ((n_dish + 1 + 31) // 32)
    if threads > THREADS_MAX:
        raise ValueError(f"the GPU kernel handles at most {THREADS_MAX - 1} dishes, not {n_dish}")
    groups = (n_chan + channels_per_block - 1) // channels_per_block
    grid = ((n_dish + 1) // 2, (n_src + src_per_block - 1) // src_per_block, n_time * groups)
    return grid, threads
