"""The gains (instrument.gains) against their analytic statistics, and their application (simulate.corrupt)
against plain numpy matrix products."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from srcnet_sim.instrument.gains import DishGains, GainParameters
from srcnet_sim.simulate.corrupt import apply_jones

PARAMETERS = GainParameters(amp_std=0.05, phase_std_rad=np.radians(10.0), amp_drift=0.02, phase_drift_rad=np.radians(5.0),
                        corr_time_s=1800.0, bandpass_ripple=0.02, leakage_std=0.02)
T0_S = 5.0e9
BAND_HZ = (1.3e9, 1.4e9)
N_DISH = 4000  # an ensemble large enough for 3 % statistics


@pytest.fixture(scope="module")
def ensemble() -> DishGains:
    return DishGains.draw(PARAMETERS, N_DISH, seed=7, t0_s=T0_S, band_hz=BAND_HZ)


def test_constant_gains_and_leakage_have_the_rms_asked_for(ensemble: DishGains):
    assert np.std(np.log(np.abs(ensemble.g0))) == pytest.approx(PARAMETERS.amp_std, rel=0.03)
    assert np.std(np.angle(ensemble.g0)) == pytest.approx(PARAMETERS.phase_std_rad, rel=0.03)
    for part in (ensemble.leakage.real, ensemble.leakage.imag):
        assert np.std(part) == pytest.approx(PARAMETERS.leakage_std, rel=0.03)


@pytest.mark.parametrize("lag_s", [0.0, 900.0, 1800.0, 3600.0])
def test_drifts_are_unit_variance_processes_with_a_squared_exponential_correlation(ensemble: DishGains, lag_s: float):
    """Across the ensemble E[f(t) f(t + lag)] = exp(-lag^2 / (2 tau^2)) (1 at lag 0), whatever t."""
    t = T0_S + 12_345.0
    correlation = np.mean(ensemble.drifts(t) * ensemble.drifts(t + lag_s))
    assert correlation == pytest.approx(np.exp(-lag_s**2 / (2 * PARAMETERS.corr_time_s**2)), abs=0.03)


def test_gain_is_the_constant_part_times_the_drifts(ensemble: DishGains):
    t = T0_S + 600.0
    f = ensemble.drifts(t)
    g = ensemble.gain(t)
    np.testing.assert_allclose(np.log(np.abs(g / ensemble.g0)), PARAMETERS.amp_drift * f[0], atol=1e-12)
    np.testing.assert_allclose(np.angle(g / ensemble.g0), PARAMETERS.phase_drift_rad * f[1], atol=1e-12)
    assert np.std(np.log(np.abs(g / ensemble.g0))) == pytest.approx(PARAMETERS.amp_drift, rel=0.05)


def test_bandpass_ends_are_the_sums_of_the_legendre_coefficients(ensemble: DishGains):
    """P_k(1) = 1 and P_k(-1) = (-1)^k: at the band's ends the log bandpass is sum c_k and sum (-1)^k c_k."""
    b = ensemble.bandpass(np.array(BAND_HZ))
    coeff = ensemble.bandpass_coeff
    signs = (-1.0) ** np.arange(1, coeff.shape[-1] + 1)
    np.testing.assert_allclose(np.log(np.abs(b[:, 1, :])), coeff[0].sum(-1), atol=1e-12)
    np.testing.assert_allclose(np.log(np.abs(b[:, 0, :])), (coeff[0] * signs).sum(-1), atol=1e-12)
    np.testing.assert_allclose(np.angle(b[:, 1, :]), coeff[1].sum(-1), atol=1e-12)
    flat = DishGains.draw(GainParameters(0, 0, 0, 0, 1.0, 0, 0), 3, seed=1, t0_s=T0_S, band_hz=BAND_HZ)
    np.testing.assert_array_equal(flat.jones(T0_S + 10, np.linspace(*BAND_HZ, 5)), np.broadcast_to(np.eye(2), (3, 5, 2, 2)))


def test_jones_is_bandpass_gain_leakage_in_that_order(ensemble: DishGains):
    t, freq = T0_S + 100.0, np.linspace(*BAND_HZ, 3)
    jones = ensemble.jones(t, freq)
    b, g, d = ensemble.bandpass(freq), ensemble.gain(t), ensemble.leakage
    for p in (0, 17, N_DISH - 1):
        for k in range(3):
            leakage = np.array([[1.0, d[p, 0]], [d[p, 1], 1.0]])
            expected = np.diag(b[p, k]) @ np.diag(g[p]) @ leakage
            np.testing.assert_allclose(jones[p, k], expected, rtol=1e-14)


def test_draws_depend_on_the_seed_only():
    a = DishGains.draw(PARAMETERS, 5, seed=3, t0_s=T0_S, band_hz=BAND_HZ)
    b = DishGains.draw(PARAMETERS, 5, seed=3, t0_s=T0_S, band_hz=BAND_HZ)
    c = DishGains.draw(PARAMETERS, 5, seed=4, t0_s=T0_S, band_hz=BAND_HZ)
    assert a.jones(T0_S + 60, np.array([1.35e9])).tobytes() == b.jones(T0_S + 60, np.array([1.35e9])).tobytes()
    assert not np.allclose(a.g0, c.g0)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_apply_jones_is_jp_v_jq_hermitian(dtype):
    rng = np.random.default_rng(5)
    n_dish, n_chan = 6, 3
    ant1, ant2 = np.triu_indices(n_dish, 1)
    vis = (rng.standard_normal((len(ant1), n_chan, 4)) + 1j * rng.standard_normal((len(ant1), n_chan, 4))).astype(dtype)
    jones = rng.standard_normal((n_dish, n_chan, 2, 2)) + 1j * rng.standard_normal((n_dish, n_chan, 2, 2))
    expected = jones[ant1] @ vis.reshape(-1, n_chan, 2, 2).astype(np.complex128) @ np.conj(np.swapaxes(jones[ant2], -1, -2))
    corrupted = vis.copy()
    apply_jones(corrupted, jones, ant1, ant2)
    assert corrupted.dtype == dtype
    tolerance = 1e-6 if dtype == np.complex64 else 1e-13
    np.testing.assert_allclose(corrupted.reshape(-1, n_chan, 2, 2), expected, rtol=tolerance, atol=tolerance * 10)


@pytest.mark.parametrize("setting, value", [("GAIN_AMP_DRIFT", "-0.1"), ("GAIN_PHASE_DRIFT_DEG", "-5"),
                                            ("GAIN_CORR_TIME_S", "0"), ("GAIN_AMP_STD", "nan"), ("GAINS", "yes")])
def test_bad_gain_settings_are_one_line_naming_the_setting_and_nothing_is_written(out_dir: Path, setting: str,
                                                                                  value: str):
    result = run_cli(["run", "--vis", "--truth"], env={"OUT_DIR": str(out_dir), "GAINS": "on", setting: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], result.stderr
    assert list(out_dir.iterdir()) == []
