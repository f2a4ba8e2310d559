"""A predictor workload that exercises every GPU code path, and the CPU predictor's answer for it.

Shared by tests/unit/simulate/test_gpu_backend.py (CI: NumPy + numba's CUDA simulator) and tests/unit/simulate/test_gpu_device.py
(a real CUDA device): polarised point sources and Gaussians, two dish types with different beams,
baselines up to ~40 km (so bandwidth and time smearing change the answer by far more than the tolerances).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srcnet_sim.simulate.predict import SourceTerms, baseline_pairs, predict_time_step

C = 299_792_458.0


@dataclass
class Workload:
    dish_uvw_m: np.ndarray  # (n_time, n_dish, 3)
    dish_uvw_rate_m_s: np.ndarray  # (n_time, n_dish, 3)
    terms: SourceTerms
    dish_type: np.ndarray
    freq_hz: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    channel_width_hz: float = 4e6
    interval_s: float = 300.0


def make_workload(n_dish: int, n_src: int, n_gauss: int, n_chan: int, n_time: int, autos: bool = True,
                  seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)
    uvw = rng.normal(0.0, 12_000.0, (n_time, n_dish, 3))
    uvw[..., 2] *= 0.3
    rate = rng.normal(0.0, 0.5, (n_time, n_dish, 3))  # m/s: earth rotation at ~10 km
    l, m = rng.uniform(-0.03, 0.03, (2, n_src))
    lmn = np.stack([l, m, np.sqrt(1 - l * l - m * m) - 1], -1)
    stokes = np.empty((n_chan, 4, n_src))
    stokes[:, 0] = rng.uniform(0.01, 1.0, n_src)
    stokes[:, 1:] = stokes[:, :1] * rng.uniform(-0.3, 0.3, (n_chan, 3, n_src))
    beams = rng.uniform(0.3, 1.0, (2, n_chan, n_src))
    gaussian = np.zeros((n_src, 4))
    n_point = n_src - n_gauss
    major = rng.uniform(2e-6, 2e-5, n_gauss)
    pa = rng.uniform(0, np.pi, n_gauss)
    gaussian[n_point:] = np.stack([major**2, (0.6 * major) ** 2, np.sin(pa), np.cos(pa)], -1)
    terms = SourceTerms(lmn=lmn, stokes=stokes, beams=beams, gaussian=gaussian, n_point=n_point)
    ant1, ant2 = baseline_pairs(n_dish, autos)
    freq = 1.3e9 + 4e6 * np.arange(n_chan)
    return Workload(uvw, rate, terms, rng.integers(0, 2, n_dish), freq, ant1, ant2)


def cpu_predict(w: Workload, bandwidth: bool, time_smearing: bool, dtype: type) -> np.ndarray:
    """(n_time, n_baseline, n_chan, 4) from the CPU predictor, step by step."""
    steps = []
    for t in range(len(w.dish_uvw_m)):
        rate = (w.dish_uvw_rate_m_s[t] @ w.terms.lmn.T) / C if time_smearing else None
        steps.append(predict_time_step(w.dish_uvw_m[t], w.terms, w.dish_type, w.freq_hz, w.ant1, w.ant2,
                                       channel_width_hz=w.channel_width_hz if bandwidth else 0.0,
                                       dish_delay_rate=rate, interval_s=w.interval_s if time_smearing else 0.0,
                                       dtype=dtype))
    return np.stack(steps)


def gpu_predict(predictor, w: Workload, bandwidth: bool, time_smearing: bool, dtype: type) -> np.ndarray:
    return predictor.predict(w.dish_uvw_m, w.terms, w.dish_type, w.freq_hz, w.ant1, w.ant2,
                             channel_width_hz=w.channel_width_hz if bandwidth else 0.0,
                             dish_uvw_rate_m_s=w.dish_uvw_rate_m_s if time_smearing else None,
                             interval_s=w.interval_s if time_smearing else 0.0, dtype=dtype)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """||got - want|| / ||want|| over all visibilities (Frobenius norm)."""
    return float(np.linalg.norm((got - want).ravel()) / np.linalg.norm(want.ravel()))


TOLERANCE = {np.complex64: 1e-5, np.complex128: 1e-10}
CASES = [(False, False), (True, False), (False, True), (True, True)]  # (bandwidth, time smearing)
