"""The per-baseline CUDA kernel of the GPU predictor (numba.cuda; runs in numba's CUDA simulator in CI).

It computes, for every dish pair p <= q, every channel k and Stokes parameter x,
    S[t, k, x, p, q] = sum_s w_pq(s, k) X[k, x, s] Z[t, k, s, p] conj(Z[t, k, s, q])
with the baseline-dependent real weight w = bandwidth sinc * time sinc * Gaussian envelope, the
same terms and conventions as `predict._weighted_sums` on the CPU.

One kernel source computes these sums, `grouped_kernel`: each thread serves one dish q against a group
of rows p, so q's values are read once per source for all of them. The source is a template
(_GROUPED_SOURCE) expanded for the number of rows, channels and Stokes parameters a thread keeps in
registers, because numba.cuda has no register arrays indexed at run time.

Layout: every per-dish array is (time, [channel,] source, dish), dish fastest, so the threads of a
warp (consecutive q) read consecutive addresses. A block owns one slice of the sources (grid y) and
one time step with a group of CH channels (grid z); the rows' values (Z times the Stokes weight) for a
tile of sources sit in shared memory; each thread evaluates the bandwidth sinc once per source for
all CH channels and adds its sums to the output atomically at the end (slices of sources meet there).
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


SHARED_BYTES_MAX = 48 * 1024  # static shared memory of one block


def grouped_tile(double: bool, n_stokes: int, rows: int, channels_per_block: int, tile: int) -> int:
    """`tile` lowered (halved) until `grouped_kernel`'s shared arrays fit SHARED_BYTES_MAX."""
    real = 8 if double else 4
    per_source = 2 * rows * (channels_per_block * n_stokes * 2 * real + 4 * real)  # X Z, x, exp(i x), rate
    while tile > 1 and per_source * tile + 2 * rows * 2 * real > SHARED_BYTES_MAX:
        tile //= 2
    return tile


def grouped_shape(n_dish: int, n_src: int, n_time: int, n_chan: int, rows: int, channels_per_block: int,
                  src_per_block: int) -> tuple[tuple[int, int, int], int]:
    """(grid, threads) of `grouped_kernel`: one block per pair of row groups (g, G - 1 - g)."""
    n_groups = (n_dish + rows - 1) // rows
    threads = 32 * ((2 * n_dish - (n_groups - 1) * rows + 31) // 32)
    if threads > THREADS_MAX:
        raise ValueError(f"{n_dish} dishes need {threads} threads per block of the GPU kernel, more than {THREADS_MAX}")
    groups = (n_chan + channels_per_block - 1) // channels_per_block
    grid = ((n_groups + 1) // 2, (n_src + src_per_block - 1) // src_per_block, n_time * groups)
    return grid, threads


@cuda.jit(device=True, inline=True)
def _bandwidth_sinc(xp, ep, xq, eq, one, sixth, one_120th, taylor_below):  # pragma: no cover - compiled for the device
    """sinc(x_p - x_q) from x and exp(i x) of both dishes: sin(x_p - x_q) = Im(exp(i x_p) conj(exp(i x_q))),
    a Taylor series where that difference of products cancels. The constants come typed (float32 stays
    float32)."""
    d = xp - xq
    d2 = d * d
    if abs(d) < taylor_below:
        return one - d2 * sixth + d2 * d2 * one_120th
    return (ep.imag * eq.real - ep.real * eq.imag) / d


@cuda.jit(device=True, inline=True)
def _channel_weight(w, half_interval_f, dr, freq_per_c, e0, smear_t, gaussian, two_pi, sinc_exact):  # pragma: no cover
    """w times the time-smearing sinc of channel k and the Gaussian envelope exp(-(f_k / c)^2 e0)."""
    if smear_t:
        y = half_interval_f * dr  # turns
        if abs(y) > sinc_exact:
            w = w * math.sin(two_pi * y) / (two_pi * y)
    if gaussian:
        w = w * math.exp(-(freq_per_c * freq_per_c) * e0)
    return w


_GROUPED_SOURCE = '''
def kernel(z, stokes, bwx, bwe, rate, half_interval_f, freq_per_c, duvw, gauss, src_first, src_last,
           src_per_block, n_chan, n_src, n_dish, out):
    sh_zx = cuda.shared.array(ZX_WORDS, cplx)  # [source, slot, channel, Stokes]
    sh_bwx = cuda.shared.array(ROW_WORDS, real)  # [source, slot]
    sh_bwe = cuda.shared.array(ROW_WORDS, cplx)
    sh_rate = cuda.shared.array(ROW_WORDS, real)
    zero = real(0.0)
    one = real(1.0)
    sixth = real(1.0 / 6.0)
    one_120th = real(1.0 / 120.0)
    taylor_below = real(0.05)
    sinc_exact = real(1e-5)
    czero = cplx(0)
    two_pi = real(2.0 * math.pi)
    envelope = real(GAUSS_ENVELOPE)
$ACC_INIT
    j = cuda.threadIdx.x
    n_threads = cuda.blockDim.x
    n_groups = (n_dish + ROWS - 1) // ROWS
    g1 = cuda.blockIdx.x
    g2 = n_groups - 1 - g1
    width1 = n_dish - g1 * ROWS  # threads (dishes q) of group g1
    if j < width1:
        r = 0
        q = g1 * ROWS + j
        active = True
    else:
        r = 1
        q = g2 * ROWS + (j - width1)
        active = g2 > g1 and q < n_dish
    if not active:
        q = g1 * ROWS  # a valid index; the thread only helps to load tiles
    p0 = (g1 if r == 0 else g2) * ROWS
    n_cgroups = (n_chan + CH - 1) // CH
    t = cuda.blockIdx.z // n_cgroups
    k0 = (cuda.blockIdx.z - t * n_cgroups) * CH
$CHANNEL_INIT
$ROW_INIT
    s_base = t * n_src * n_dish
    s_begin = src_first + cuda.blockIdx.y * src_per_block
    s_end = min(s_begin + src_per_block, src_last)
    for s0 in range(s_begin, s_end, TILE):
        n_in = min(TILE, s_end - s0)
        cuda.syncthreads()
        for idx in range(j, SLOTS * TILE, n_threads):  # slot fastest: runs of ROWS consecutive dishes
            sl = idx // SLOTS
            slot = idx - sl * SLOTS
            rr = slot // ROWS
            pp = (g1 if rr == 0 else g2) * ROWS + slot - rr * ROWS
            valid = sl < n_in and pp < n_dish and (rr == 0 or g2 > g1)
            o = (s0 + sl) * n_dish + pp
            if SMEAR_BW:
                sh_bwx[u64(idx)] = bwx[u64(s_base + o)] if valid else zero
                sh_bwe[u64(idx)] = bwe[u64(s_base + o)] if valid else czero
            if SMEAR_T:
                sh_rate[u64(idx)] = rate[u64(s_base + o)] if valid else zero
            for kk in range(CH):
                k = min(k0 + kk, n_chan - 1)
                zp = z[u64((t * n_chan + k) * n_src * n_dish + o)] if valid else czero
                for x in range(NS):
                    sh_zx[u64((idx * CH + kk) * NS + x)] = zp * stokes[k, x, s0 + sl] if valid else czero
        cuda.syncthreads()
        if active:
            for sl in range(n_in):
                s = s0 + sl
                o = u64(s * n_dish + q)
                so = u64(s_base) + o
                xq = zero
                eq = czero
                rq = zero
                if SMEAR_BW:
                    xq = bwx[so]
                    eq = bwe[so]
                if SMEAR_T:
                    rq = rate[so]
$LOAD_Q
                ga = gb = gs = gc = zero
                if GAUSSIAN:
                    ga = gauss[0, s]
                    gb = gauss[1, s]
                    gs = gauss[2, s]
                    gc = gauss[3, s]
                base = u64(sl * SLOTS + r * ROWS)
$ROWS_BODY
    if active:
$ATOMICS
'''


def _grouped_source(rows: int, ch: int, n_stokes: int) -> str:
    """`_GROUPED_SOURCE` with its per-row, per-channel and per-Stokes code written out: every sum, Z_q and
    row constant is a scalar, so they all live in registers (numba's loops over local arrays were not
    unrolled and put the sums in local memory)."""
    ind = " " * 4
    acc = [f"a{i}_{k}_{x}" for i in range(rows) for k in range(ch) for x in range(n_stokes)]
    acc_init = "\n".join(f"{ind}{a}r = zero\n{ind}{a}i = zero" for a in acc)
    channel_init = "\n".join(
        f"{ind}k{k} = min(k0 + {k}, n_chan - 1)\n{ind}zb{k} = u64((t * n_chan + k{k}) * n_src * n_dish)\n"
        f"{ind}fk{k} = freq_per_c[k{k}]\n{ind}hk{k} = half_interval_f[k{k}]" for k in range(ch))
    row_init = "\n".join(
        f"{ind}pr = min(p0 + {i}, n_dish - 1)\n{ind}du{i} = real(duvw[t, pr, 0] - duvw[t, q, 0])\n"
        f"{ind}dv{i} = real(duvw[t, pr, 1] - duvw[t, q, 1])" for i in range(rows))
    ind4 = " " * 16
    load_q = "\n".join(f"{ind4}zq{k} = z[zb{k} + o]\n{ind4}zn{k} = -zq{k}.imag" for k in range(ch))
    body = []
    for i in range(rows):
        b = ind4 + "    "
        body.append(f"{ind4}if p0 + {i} <= q:\n"
                    f"{b}b = base + u64({i})\n"
                    f"{b}w = one\n"
                    f"{b}if SMEAR_BW:\n"
                    f"{b}    w = _bandwidth_sinc(sh_bwx[b], sh_bwe[b], xq, eq, one, sixth, one_120th, taylor_below)\n"
                    f"{b}dr = sh_rate[b] - rq if SMEAR_T else zero\n"
                    f"{b}e0 = zero\n"
                    f"{b}if GAUSSIAN:\n"
                    f"{b}    ua = du{i} * gs + dv{i} * gc\n"
                    f"{b}    uc = du{i} * gc - dv{i} * gs\n"
                    f"{b}    e0 = envelope * (ga * ua * ua + gb * uc * uc)")
        for k in range(ch):
            body.append(f"{b}wk = _channel_weight(w, hk{k}, dr, fk{k}, e0, SMEAR_T, GAUSSIAN, two_pi, sinc_exact)\n"
                        f"{b}wr = wk * zq{k}.real\n{b}wi = wk * zq{k}.imag\n{b}wn = wk * zn{k}")
            for x in range(n_stokes):
                a = f"a{i}_{k}_{x}"
                body.append(f"{b}zx = sh_zx[(b * u64({ch}) + u64({k})) * u64({n_stokes}) + u64({x})]  # X Z_p\n"
                            f"{b}{a}r += zx.real * wr\n{b}{a}r += zx.imag * wi\n"  # one fused multiply-add each
                            f"{b}{a}i += zx.imag * wr\n{b}{a}i += zx.real * wn")
    atomics = []
    for i in range(rows):
        for k in range(ch):
            lines = [f"{ind}    if p0 + {i} <= q and k0 + {k} < n_chan:"]
            for x in range(n_stokes):
                a = f"a{i}_{k}_{x}"
                lines.append(f"{ind}        cuda.atomic.add(out, (t, k0 + {k}, {x}, 0, p0 + {i}, q), {a}r)\n"
                             f"{ind}        cuda.atomic.add(out, (t, k0 + {k}, {x}, 1, p0 + {i}, q), {a}i)")
            atomics.append("\n".join(lines))
    return (_GROUPED_SOURCE.replace("$ACC_INIT", acc_init).replace("$CHANNEL_INIT", channel_init)
            .replace("$ROW_INIT", row_init).replace("$LOAD_Q", load_q).replace("$ROWS_BODY", "\n".join(body))
            .replace("$ATOMICS", "\n".join(atomics)))


@lru_cache(maxsize=None)
def grouped_kernel(double: bool, n_stokes: int, rows: int, channels_per_block: int, tile: int, smear_bw: bool,
                   smear_t: bool, gaussian: bool):
    """The compiled kernel for one precision, number of Stokes parameters (1 or 4), rows per group, channel
    group size, sources per shared-memory tile and combination of bandwidth smearing, time smearing and
    Gaussian sources (the unused code and its registers are left out).

    kernel[grid, threads](z, stokes, bwx, bwe, rate, half_interval_f, freq_per_c, duvw, gauss, src_first,
                          src_last, src_per_block, n_chan, n_src, n_dish, out)
        z: (n_t, n_chan, n_src, n_dish) Z, complex dtype, flattened (1-D: the kernel computes one flat
            offset per source instead of four-index addressing per term; one 8- or 16-byte load per term).
        stokes: (n_chan, n_stokes, n_src) Jy, real dtype.
        bwx: (n_t, n_src, n_dish) x = pi dnu tau, real; bwe: exp(i x) (read only with bandwidth smearing);
            flattened. rate: (n_t, n_src, n_dish) d(tau)/dt, s/s, flattened (read only with time smearing).
        half_interval_f: (n_chan,) 0.5 * interval * f_k, s Hz; freq_per_c: (n_chan,) f_k / c, 1/m.
        duvw: (n_t, n_dish, 3) per-dish UVW, m; gauss: (4, n_src) [major^2, minor^2, sin pa, cos pa].
        src_first, src_last: the sources summed (all points or all Gaussians; the grid's y slices start at
            src_first); src_per_block: sources per grid-y slice.
        out: (n_t, n_chan, n_stokes, 2, n_dish, n_dish) real sums, added to (upper triangle).

    The dishes are cut into G = ceil(n_dish / rows) groups of `rows` consecutive rows p. One block owns
    groups g and G - 1 - g (n_dish - g rows + n_dish - (G - 1 - g) rows threads: about n_dish + rows, the
    same for every block, no idle triangle). Each thread owns one dish q of one group and reads q's values
    (Z_q for CH channels, x_q, exp(i x_q), rate_q) once per source from global memory, then reuses them
    for the group's `rows` rows p <= q, whose X Z_p, x_p, exp(i x_p) and rate_p for a tile of sources sit
    in shared memory (read as broadcasts); the sums [rows, CH, n_stokes, 2] stay in registers.
    Global traffic per term is thus 1 / rows of a kernel serving one (p, q) per thread.
    grid, threads = grouped_shape(...); `tile` must fit the shared memory (see grouped_tile).
    """
    slots = 2 * rows
    namespace = {
        "cuda": cuda, "math": math, "u64": numba.uint64, "GAUSS_ENVELOPE": GAUSS_ENVELOPE,
        "real": numba.float64 if double else numba.float32, "cplx": numba.complex128 if double else numba.complex64,
        "_bandwidth_sinc": _bandwidth_sinc, "_channel_weight": _channel_weight,
        "SMEAR_BW": smear_bw, "SMEAR_T": smear_t, "GAUSSIAN": gaussian,
        "ROWS": rows, "CH": channels_per_block, "NS": n_stokes, "TILE": tile, "SLOTS": slots,
        "ZX_WORDS": slots * channels_per_block * n_stokes * tile, "ROW_WORDS": slots * tile,
    }
    source = _grouped_source(rows, channels_per_block, n_stokes)
    exec(compile(source, f"<grouped_kernel rows={rows} ch={channels_per_block} stokes={n_stokes}>", "exec"),
         namespace)
    return cuda.jit(fastmath=False)(namespace["kernel"])
