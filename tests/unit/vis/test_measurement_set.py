"""The MeasurementSet: read by pyuvdata (an independent reader) and checked against the simulation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.config import load_settings
from srcnet_sim.simulate.observation import simulate
from srcnet_sim.run.plan import plan


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """An AA2 (64 dishes) run of 3 time steps, double precision, with noise, autocorrelations and a Gaussian."""
    out = tmp_path_factory.mktemp("ms")
    sky = write_csv_sky(out / "sky.csv", [(150.12, 2.21, 1.0, 0, 0, 0), (150.125, 2.2, 0.5, 0, 0, 0),
                                          (150.11, 2.215, 0.3, 4.0, 2.0, 30.0)],
                        header="ra_deg,dec_deg,i_jy,major_arcsec,minor_arcsec,pa_deg")
    env = {"OUT_DIR": str(out), "SKY_MODEL": str(sky), "TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "3",
           "OBS_LENGTH_HOURS": "0.5", "PRECISION": "double", "NOISE": "on", "SEED": "5", "CORRELATIONS": "cross+auto",
           "FILE_PREFIX": "t_", "RUCIO_NAMESPACE": "sim"}
    result = run_cli(["run", "--vis"], env=env)
    assert result.returncode == 0, result.stderr
    return unpack_ms(out / "sim" / "t_measurements.ms.tar", out / "unpacked"), env


def read_pyuvdata(path: Path):
    from pyuvdata import UVData

    uv = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any complaint of pyuvdata's about our MS fails the test
        uv.read(str(path), data_column="DATA")
    return uv


def test_pyuvdata_reads_it_and_agrees_with_the_simulation(small_run):
    path, env = small_run
    uv = read_pyuvdata(path)
    settings = load_settings(environ=env)
    run_plan = plan(settings)
    steps = list(simulate(run_plan.observation))
    n_bl = 64 * 65 // 2
    assert (uv.Nbls, uv.Ntimes, uv.Nfreqs, uv.Npols) == (n_bl, 3, 4, 4)
    # TELESCOPE_NAME is the observatory CASA knows at the site; the position pyuvdata uses is our array's own.
    assert uv.telescope.name == "MeerKAT"
    site = run_plan.observation.telescope.site
    assert np.linalg.norm([(a - b).to_value("m") for a, b in zip(uv.telescope.location.to_geocentric(),
                                                                  site.earth_location().to_geocentric())]) < 1e-3
    np.testing.assert_allclose(uv.freq_array.ravel(), settings.freq_hz)
    np.testing.assert_allclose(uv.channel_width, settings.freq_inc_hz)
    expected_jd = np.array([s.time_s for s in steps]) / 86400.0 + 2400000.5
    np.testing.assert_allclose(np.unique(uv.time_array), expected_jd, rtol=0, atol=1e-8)
    # Our correlations XX, XY, YX, YY are pyuvdata's -5, -7, -8, -6 (it may reorder them).
    pol_index = [uv.polarization_array.tolist().index(p) for p in (-5, -7, -8, -6)]
    # pyuvdata orders baselines its own way: match rows by (time, ant1, ant2).
    ant1, ant2 = run_plan.observation.baselines
    for i, step in enumerate(steps):
        rows = np.nonzero(np.isclose(uv.time_array, expected_jd[i], atol=1e-8, rtol=0))[0]
        key = {(a, b): r for a, b, r in zip(uv.ant_1_array[rows], uv.ant_2_array[rows], rows)}
        order = np.array([key[(a, b)] for a, b in zip(ant1, ant2)])
        # pyuvdata keeps uvw = x(ant2) - x(ant1) in memory and conjugates the data on reading an MS.
        np.testing.assert_allclose(-uv.uvw_array[order], step.uvw_m, atol=1e-6)
        np.testing.assert_allclose(np.conj(uv.data_array[order][..., pol_index]), step.vis, rtol=1e-6, atol=1e-6)


def test_pyuvdata_finds_uvw_consistent_with_antenna_positions(small_run):
    """pyuvdata recomputes UVW from the ANTENNA positions with its own astrometry and compares."""
    uv = read_pyuvdata(small_run[0])
    uv.check(strict_uvw_antpos_check=True)


def test_subtables_describe_the_observation(small_run):
    path, _ = small_run
    with table(f"{path}/ANTENNA", ack=False) as ant:
        assert ant.nrows() == 64
        assert set(ant.getcol("DISH_DIAMETER")) <= {13.5, 15.0}
    with table(f"{path}/POLARIZATION", ack=False) as pol:
        assert pol.getcol("CORR_TYPE")[0].tolist() == [9, 10, 11, 12]
    with table(f"{path}/SPECTRAL_WINDOW", ack=False) as spw:
        np.testing.assert_allclose(spw.getcol("CHAN_WIDTH")[0], 1.775e7)
    with table(f"{path}/HISTORY", ack=False) as hist:
        settings = json.loads(next(m for m in hist.getcol("MESSAGE") if m.startswith("settings "))[9:])
        assert settings["seed"] == 5 and settings["noise"] == "on"
    with table(str(path), ack=False) as main:
        assert main.getcol("DATA").dtype == np.complex64
        a1, a2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
        assert np.all(a1 <= a2) and np.any(a1 == a2)
        np.testing.assert_allclose(main.getcol("INTERVAL"), 600.0)


def test_thermal_noise_follows_the_radiometer_equation(tmp_path: Path):
    """A sky of one zero-flux source: the data are pure noise with the rms the SIGMA column states."""
    sky = write_csv_sky(tmp_path / "sky.csv", [(150.12, 2.21, 0.0)])
    out = tmp_path / "o"
    out.mkdir()
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out), "SKY_MODEL": str(sky), "NOISE": "on",
                                           "NUM_TIME_STAMPS": "1", "OBS_LENGTH_HOURS": "0.25"})
    assert result.returncode == 0, result.stderr
    with table(str(unpack_ms(out / "testing" / "measurements.ms.tar", tmp_path / "unpacked")), ack=False) as main:
        data, sigma = main.getcol("DATA"), main.getcol("SIGMA")
        weight = main.getcol("WEIGHT")
    np.testing.assert_allclose(weight, 1 / sigma**2, rtol=1e-6)
    # MeerKAT-MeerKAT, MeerKAT-SKA and SKA-SKA baselines have different SEFD products.
    assert len(np.unique(np.round(sigma[:, 0], 6))) == 3
    normalised = data.real / sigma[:, None, :]
    assert normalised.std() == pytest.approx(1.0, abs=0.01)
    assert (data.imag / sigma[:, None, :]).std() == pytest.approx(1.0, abs=0.01)
    # SEFD = 2 k (Tsys/eta) / A: MeerKAT 22 K over 13.5 m dishes, SKA 20 K / 0.9 over 15 m dishes.
    k, jy = 1.380649e-23, 1e-26
    sefd_meerkat = 2 * k * 22.0 / (np.pi * 6.75**2) / jy
    sefd_ska = 2 * k * (20.0 / 0.9) / (np.pi * 7.5**2) / jy
    expected = [np.sqrt(a * b / (2 * 17.75e6 * 900.0)) for a, b in
                ((sefd_ska, sefd_ska), (sefd_meerkat, sefd_ska), (sefd_meerkat, sefd_meerkat))]
    np.testing.assert_allclose(np.unique(np.round(sigma[:, 0], 9)), expected, rtol=1e-5)
