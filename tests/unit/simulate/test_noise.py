"""The thermal noise's values: each channel's generator seeded by (seed, time step, channel), whatever the threads."""

from __future__ import annotations

import numpy as np
import pytest

from srcnet_sim.simulate.noise import add_noise


def numpy_noise(vis: np.ndarray, sigma: np.ndarray, seed: int, time_index: int, is_auto: np.ndarray | None,
                first_channel: int) -> None:
    """The noise as the definition states it, in NumPy's own arithmetic: real and imaginary parts drawn from the
    channel's generator, autocorrelations' XX and YY real with sqrt(2) the rms, scaled, rounded, added."""
    real_dtype = np.float32 if vis.dtype == np.complex64 else np.float64
    for k in range(vis.shape[1]):
        rng = np.random.default_rng([seed, time_index, first_channel + k])
        real = rng.standard_normal((vis.shape[0], vis.shape[2]), dtype=real_dtype)
        imag = rng.standard_normal((vis.shape[0], vis.shape[2]), dtype=real_dtype)
        if is_auto is not None:
            for corr in (0, vis.shape[2] - 1):
                real[is_auto, corr] *= np.sqrt(2.0)
                imag[is_auto, corr] = 0.0
        vis[:, k, :] += (sigma[:, None] * real + 1j * sigma[:, None] * imag).astype(vis.dtype)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("with_autos", [True, False])
def test_noise_equals_numpys_arithmetic_bit_for_bit_on_any_thread_count(dtype, threads: int, with_autos: bool):
    rng = np.random.default_rng(5)
    n_bl, n_chan = 301, 7
    sigma = rng.uniform(0.1, 3.0, n_bl)
    is_auto = (np.arange(n_bl) % 25 == 0) if with_autos else None
    start = (rng.standard_normal((n_bl, n_chan, 4)) + 1j * rng.standard_normal((n_bl, n_chan, 4))).astype(dtype)
    expected, ours = start.copy(), start.copy()
    numpy_noise(expected, sigma, 42, 11, is_auto, 3)
    add_noise(ours, sigma, 42, 11, is_auto, 3, threads=threads)
    assert np.array_equal(expected.view(np.uint8), ours.view(np.uint8))


def test_noise_of_a_channel_does_not_depend_on_the_block_it_is_computed_in():
    sigma = np.ones(50)
    whole = np.zeros((50, 8, 4), dtype=np.complex64)
    add_noise(whole, sigma, 7, 3, None, 0, threads=2)
    tail = np.zeros((50, 5, 4), dtype=np.complex64)
    add_noise(tail, sigma, 7, 3, None, 3, threads=1)
    assert np.array_equal(whole[:, 3:], tail)
    assert 0.9 < np.std(whole.real) < 1.1 and 0.9 < np.std(whole.imag) < 1.1
