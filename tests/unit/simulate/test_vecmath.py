"""The kernels' own sin/cos and exp against NumPy's, to the accuracy their docstrings state."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from srcnet_sim.simulate.vecmath import (EXP_FLOOR, exp_nonpositive, exp_nonpositive_single, sincos_turns,
                                         sincos_turns_single)


def elementwise(function):
    """A compiled loop applying the scalar `function` to every element of a float64 array."""

    @numba.njit
    def apply(x):
        out = np.empty((len(x), 2))
        for i in range(len(x)):
            value = function(x[i])
            if isinstance(value, tuple):
                out[i, 0], out[i, 1] = value
            else:
                out[i, 0] = value
                out[i, 1] = 0.0
        return out

    return apply


X = -np.linspace(0.0, 60.0, 600_001)  # steps of 1e-4, through the floor at -40


def test_exp_nonpositive_is_exp_to_1e10_relative():
    got = elementwise(exp_nonpositive)(X)[:, 0]
    above = X > EXP_FLOOR
    np.testing.assert_allclose(got[above], np.exp(X[above]), rtol=1e-10, atol=0)
    assert not got[~above].any()


def test_exp_nonpositive_single_is_exp_to_float32_resolution():
    """Enough for float32 weights: absolute error below 1e-11, relative error below half of float32's resolution
    where exp(x) > 4.5e-5."""
    got = elementwise(exp_nonpositive_single)(X)[:, 0]
    above = X > EXP_FLOOR
    error = np.abs(got[above] - np.exp(X[above]))
    assert error.max() < 1e-11
    assert (error / np.exp(X[above]))[X[above] > -10].max() < np.finfo(np.float32).eps / 2
    assert not got[~above].any()


@pytest.mark.parametrize("sincos, tolerance", [(sincos_turns, 1e-13), (sincos_turns_single, 3e-7)])
def test_sincos_turns_to_the_stated_absolute_error(sincos, tolerance):
    """Phases of up to 1e5 turns (100 km baselines at 1.4 GHz and beyond) lose nothing to the reduction."""
    rng = np.random.default_rng(11)
    turns = np.concatenate([np.linspace(-2.0, 2.0, 40_001), rng.uniform(-1e5, 1e5, 40_000)])
    got = elementwise(sincos)(turns)
    phase = 2 * np.pi * (turns - np.round(turns))  # exact reduction in float64 before NumPy's sin and cos
    assert np.abs(got[:, 0] - np.sin(phase)).max() < tolerance
    assert np.abs(got[:, 1] - np.cos(phase)).max() < tolerance
