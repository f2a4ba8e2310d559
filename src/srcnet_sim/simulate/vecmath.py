"""Vectorisable sin/cos and exp for numba kernels.

numba calls the C library's scalar sin, cos and exp (~17 ns each here); these branch-free
polynomials compile to SIMD code instead (~0.7 ns). The phase is reduced exactly in turns
first, so that large phases (10^5 rad for 100 km baselines) lose no precision.

numba's cache (cache=True) keys a kernel on its own file only: a kernel that inlines these functions is not
recompiled when this file alone changes. After editing here, remove the cached kernels (`find src -name '*.nb[ic]'
-delete`); an installed release replaces every file, so users never run a stale kernel.
"""

from __future__ import annotations

import numba
import numpy as np

TWO_PI = 2.0 * np.pi


@numba.njit(inline="always", fastmath=True)
def _folded_turns(turns: float) -> tuple[float, bool]:  # pragma: no cover - compiled
    """(x, folded): turns reduced exactly to [-0.5, 0.5], then folded to |x| <= 0.25 with sin(pi - a) = sin(a),
    cos(pi - a) = -cos(a) (folded: the cosine changes sign)."""
    x = turns - np.floor(turns + 0.5)
    half = 0.5 if x > 0 else -0.5
    folded = abs(x) > 0.25
    return (half - x if folded else x), folded


@numba.njit(inline="always", fastmath=True)
def sincos_turns(turns: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """(sin, cos) of 2 pi * turns, absolute error below 1e-13 for any finite `turns`.

    Reduce and fold (_folded_turns), then Taylor series in a = 2 pi x, |a| <= pi/2, to degree 17 (sine) and
    18 (cosine).
    """
    x, folded = _folded_turns(turns)
    a = TWO_PI * x
    a2 = a * a
    s = a * (1.0 + a2 * (-1.0 / 6 + a2 * (1.0 / 120 + a2 * (-1.0 / 5040 + a2 * (1.0 / 362880 + a2 * (
        -1.0 / 39916800 + a2 * (1.0 / 6227020800 + a2 * (-1.0 / 1307674368000 + a2 * (1.0 / 355687428096000)))))))))
    c = 1.0 + a2 * (-0.5 + a2 * (1.0 / 24 + a2 * (-1.0 / 720 + a2 * (1.0 / 40320 + a2 * (-1.0 / 3628800 + a2 * (
        1.0 / 479001600 + a2 * (-1.0 / 87178291200 + a2 * (1.0 / 20922789888000 + a2 * (-1.0 / 6402373705728000)))))))))
    return s, (-c if folded else c)


SINGLE = np.float32
S3, S5, S7, S9, S11 = (SINGLE(c) for c in (-1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880, -1.0 / 39916800))
C2, C4, C6, C8, C10, C12 = (SINGLE(c) for c in (-0.5, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800, 1.0 / 479001600))


@numba.njit(inline="always", fastmath=True)
def sincos_turns_single(turns: float) -> tuple[np.float32, np.float32]:  # pragma: no cover - compiled
    """(sin, cos) of 2 pi * turns in float32, absolute error below 3e-7 for any finite `turns`.

    The reduction to [-0.5, 0.5] turns is exact in float64 (as in sincos_turns); the series, to degree 11
    (sine) and 12 (cosine), is evaluated in float32 with twice the SIMD lanes of float64.
    """
    x, folded = _folded_turns(turns)
    a = SINGLE(TWO_PI * x)
    a2 = a * a
    s = a * (SINGLE(1) + a2 * (S3 + a2 * (S5 + a2 * (S7 + a2 * (S9 + a2 * S11)))))
    c = SINGLE(1) + a2 * (C2 + a2 * (C4 + a2 * (C6 + a2 * (C8 + a2 * (C10 + a2 * C12)))))
    return s, (-c if folded else c)


def _phasor_rows(sincos):
    """A compiled row filler with the given (sin, cos)-of-turns function (float32 or float64 series)."""

    @numba.njit(inline="always", fastmath=True, error_model="numpy")
    def fill(u, v, w, l, m, n1, turns_per_m, gain, sin_out, cos_out):  # pragma: no cover - compiled
        """sin_out[s], cos_out[s] = gain[s] * (sin, cos)(2 pi turns_per_m (u l + v m + w n1)); gain None for 1."""
        for s in range(sin_out.shape[0]):
            sin_, cos_ = sincos(turns_per_m * (u * l[s] + v * m[s] + w * n1[s]))
            g = 1.0 if gain is None else gain[s]
            sin_out[s] = g * sin_
            cos_out[s] = g * cos_

    return fill


# One dish's phasor parts (or smearing sines) for a row of sources: float32 series and float64 series.
phasor_row_single, phasor_row_double = _phasor_rows(sincos_turns_single), _phasor_rows(sincos_turns)


EXP_SQUARINGS = 6
EXP_FLOOR = -40.0  # exp(-40) = 4e-18: treated as 0


@numba.njit(inline="always", fastmath=True)
def exp_nonpositive(x: float) -> float:  # pragma: no cover - compiled
    """exp(x) for x <= 0, relative error below 1e-10; 0 below x = -40.

    Scaling and squaring: exp(x) = exp(x / 64)^64 with |x / 64| <= 0.625 from a degree-12 Taylor series.
    """
    y = max(x, EXP_FLOOR) / 64.0
    e = 1.0 + y * (1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (1.0 / 120 + y * (1.0 / 720 + y * (
        1.0 / 5040 + y * (1.0 / 40320 + y * (1.0 / 362880 + y * (1.0 / 3628800 + y * (1.0 / 39916800 + y / 479001600)))))))))))
    for _ in range(EXP_SQUARINGS):
        e = e * e
    return e if x > EXP_FLOOR else 0.0


@numba.njit(inline="always", fastmath=True)
def exp_nonpositive_single(x: float) -> float:  # pragma: no cover - compiled
    """exp(x) for x <= 0 to the accuracy that float32 weights need: absolute error below 1e-11; 0 below x = -40.

    exp_nonpositive with a degree-6 series (7 fewer terms): after the 6 squarings its relative error is at most
    |x|^7 / (2^36 7!), below half of float32's resolution down to x = -10 (exp(x) = 4.5e-5); its absolute error
    |x|^7 exp(x) / (2^36 7!) is largest at x = -7 (2.2e-12).
    """
    y = max(x, EXP_FLOOR) / 64.0
    e = 1.0 + y * (1.0 + y * (1.0 / 2 + y * (1.0 / 6 + y * (1.0 / 24 + y * (1.0 / 120 + y / 720)))))
    for _ in range(EXP_SQUARINGS):
        e = e * e
    return e if x > EXP_FLOOR else 0.0
