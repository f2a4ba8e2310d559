"""The truth catalogue and the QA report: a planted field recovered, the truth re-simulating the same
visibilities, apparent fluxes against the beam formula, the expected image noise, PyBDSF missing."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from casacore.tables import table

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.products import sidecar

RA0, DEC0 = 150.12, 2.21
C = 299_792_458.0
CORE_RADIUS_M = 1500.0  # the AA2 dishes within 1.5 km: 43 dishes, a clean PSF of ~20 arcsec
IMAGE = {"IMAGING_NPIXEL": "320", "IMAGING_CELLSIZE": str(math.radians(5 / 3600))}


def write_core_telescope(directory: Path) -> Path:
    """An OSKAR telescope model of the AA2 dishes within CORE_RADIUS_M of the array centre."""
    from srcnet_sim.instrument.array import _read_ska_mid_csv

    site, rows = _read_ska_mid_csv()
    core = [r for r in rows if r["array"] == "AA2" and math.hypot(float(r["east_m"]), float(r["north_m"])) < CORE_RADIUS_M]
    directory.mkdir()
    (directory / "position.txt").write_text(f"{site['longitude']} {site['latitude']} 0\n")
    (directory / "layout.txt").write_text("".join(f"{r['east_m']},{r['north_m']},{r['up_m']}\n" for r in core))
    return directory


def planted_field(path: Path) -> list[tuple[float, float, float]]:
    """16 isolated point sources on a 6-arcmin grid (with jitter), 0.15 to 1.5 mJy: 14 to 140 sigma."""
    rng = np.random.default_rng(7)
    rows = []
    for k, (i, j) in enumerate((i, j) for i in range(4) for j in range(4)):
        ddec = ((j - 1.5) * 6 + rng.uniform(-0.3, 0.3)) / 60
        dra = ((i - 1.5) * 6 + rng.uniform(-0.3, 0.3)) / 60 / math.cos(math.radians(DEC0))
        rows.append((RA0 + dra, DEC0 + ddec, 0.15e-3 * 10 ** (k / 15)))
    write_csv_sky(path, rows)
    return rows


@pytest.fixture(scope="module")
def field(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("field")
    rows = planted_field(tmp / "sky.csv")
    env = {"OUT_DIR": str(tmp), "TELESCOPE": str(write_core_telescope(tmp / "core.tm")), "NUM_TIME_STAMPS": "12",
           "SKY_MODEL": str(tmp / "sky.csv"), "NOISE": "on", "FILE_PREFIX": "f_", "OBS_ID": "obs-field", **IMAGE}
    result = run_cli(["run", "--vis", "--clean", "--truth", "--qa"], env=env)
    assert result.returncode == 0, result.stderr
    staged = tmp / "testing"
    with tarfile.open(staged / "f_qa.tar") as archive:
        archive.extractall(tmp / "qa", filter="data")
    summary = json.loads((tmp / "qa" / "f_qa" / "f_qa.json").read_text())
    return {"tmp": tmp, "rows": rows, "staged": staged, "summary": summary, "log": result.stderr, "env": env}


def test_planted_point_sources_are_recovered(field: dict):
    s = field["summary"]
    noise = s["noise"]["measured_jy_per_beam"]
    # Every planted source is above 10 sigma of the measured rms, and PyBDSF finds all of them.
    assert min(r[2] for r in field["rows"]) * 0.8 > 10 * noise  # the primary beam takes < 20 % at 13 arcmin
    assert s["counts"]["truth_in_image"] == 16
    assert s["completeness_above_10_sigma"] == {"snr_min": 10.0, "n": 16, "hits": 16, "fraction": 1.0}
    assert s["reliability_above_10_sigma"]["fraction"] == 1.0
    assert abs(s["flux_ratio"]["above_10_sigma"]["median"] - 1.0) < 0.02
    assert s["offset_beams"]["median"] < 0.1
    # Thermal noise: the measured rms of the cleaned image is the one the weights predict.
    assert s["noise"]["noise_simulated"] is True
    assert s["noise"]["measured_over_expected"] == pytest.approx(1.0, abs=0.1)
    beam = fits.getheader(field["staged"] / "f_cleaned.fits")
    assert s["restoring_beam"]["major_arcsec"] == pytest.approx(beam["BMAJ"] * 3600)


def test_qa_lines_in_the_log_and_plots_in_the_bundle(field: dict):
    lines = [line for line in field["log"].splitlines() if " qa: " in line]
    assert len(lines) == 4 and "completeness 100.0 % (16/16)" in lines[1]
    names = sorted(p.name for p in (field["tmp"] / "qa" / "f_qa").iterdir())
    assert names == ["f_qa-completeness.png", "f_qa-cutouts.png", "f_qa-detections.fits", "f_qa-flux-ratio.png",
                     "f_qa-offsets.png", "f_qa.json"]
    for png in (n for n in names if n.endswith(".png")):
        assert (field["tmp"] / "qa" / "f_qa" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_truth_apparent_flux_is_the_beam_formula(field: dict):
    truth = Table.read(field["staged"] / "f_truth.fits", hdu="TRUTH")
    head = fits.getheader(field["staged"] / "f_truth.fits", "TRUTH")
    freq = head["CHAN0"] + head["CHANINC"] * np.arange(head["NCHAN"])
    assert truth["RA"].unit == u.deg and truth["S_INT"].unit == u.Jy and truth["S_PEAK"].unit == u.Jy / u.beam
    rows = np.array(field["rows"])
    np.testing.assert_allclose(truth["RA"], rows[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(truth["S_INT"], rows[:, 2], rtol=1e-15)
    # Every dish is 15 m (OSKAR model): gain = power beam exp(-4 ln2 r^2 / FWHM^2), FWHM = 1.25 lambda / D.
    r = np.radians(np.asarray(truth["PC_DIST"]))[:, None]
    fwhm = 1.25 * C / (freq[None, :] * 15.0)
    expected = rows[:, 2:3] * np.exp(-4 * np.log(2) * (r / fwhm) ** 2)
    np.testing.assert_allclose(truth["S_APP"], expected, rtol=1e-12)
    np.testing.assert_allclose(truth["S_APP_MEAN"], expected.mean(axis=1), rtol=1e-12)


def test_truth_and_qa_sidecars(field: dict):
    staged = field["staged"]
    for name, subtype, fmt in (("f_truth.fits", "truth-catalogue", "application/fits"), ("f_qa.tar", "qa-report", "application/x-tar")):
        document = json.loads((staged / f"{name}.meta").read_text())
        assert sidecar.problem(document) is None
        m = document["meta"]
        assert (document["dataset_name"], m["dataproduct_type"], m["dataproduct_subtype"], m["calib_level"], m["access_format"]) == \
               ("obs-field", "measurements", subtype, 4, fmt)
        assert (m["s_ra"], m["s_dec"]) == (pytest.approx(RA0), pytest.approx(DEC0))
        assert m["em_min"] == pytest.approx(C / (1.304e9 + 3.5 * 17.75e6))
    vis = json.loads((staged / "f_measurements.ms.tar.meta").read_text())["meta"]
    truth = json.loads((staged / "f_truth.fits.meta").read_text())["meta"]
    assert (truth["t_min"], truth["t_max"]) == (pytest.approx(vis["t_min"], abs=1e-9), pytest.approx(vis["t_max"], abs=1e-9))


def test_qa_command_on_an_image_and_any_catalogue(field: dict, tmp_path: Path):
    result = run_cli(["qa", str(field["staged"] / "f_cleaned.fits"), str(field["tmp"] / "sky.csv"), "--out-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "f_cleaned-qa.json").read_text())
    # A plain catalogue has no apparent flux: the intrinsic one is used, and the primary beam shows in the ratio.
    assert summary["flux_reference"] == "intrinsic" and summary["completeness_above_10_sigma"]["fraction"] == 1.0
    assert summary["flux_ratio"]["all"]["median"] < 0.99
    missing = run_cli(["qa", str(tmp_path / "nothing.fits"), str(field["tmp"] / "sky.csv")])
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [f"srcnet-sim: error: IMAGE: image {tmp_path / 'nothing.fits'} does not exist"]


def test_truth_resimulates_the_same_visibilities(tmp_path: Path):
    """SKY_MODEL=<truth file> goes through the MIGHTEE reader and gives the same DATA (polarised, spectral, Gaussian,
    a spectral line)."""
    header = ("ra_deg,dec_deg,i_jy,q_jy,u_jy,v_jy,ref_freq_hz,spectral_index,major_arcsec,minor_arcsec,pa_deg,"
              "line_flux_jy_hz,line_freq_hz,w20_kms")
    rows = [(RA0 + 0.05, DEC0 - 0.03, 1.0, 0.1, -0.05, 0.01, 1.4e9, -0.7, 0, 0, 0, 0, 0, 0),
            (RA0 - 0.2, DEC0 + 0.1, 0.5, 0, 0.02, 0, 0, -1.5, 30, 10, 40, 0, 0, 0),  # no reference frequency: flat
            (RA0 + 0.3, DEC0 + 0.3, 0.25, 0, 0, 0, 1.2e9, 0.4, 0, 0, 0, 2e7, 1.33e9, 4000.0)]  # a line over 2 channels
    write_csv_sky(tmp_path / "sky.csv", rows, header)
    env = {"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": "3", "PRECISION": "double",
           "SMEARING": "bandwidth+time"}
    first = run_cli(["run", "--vis", "--truth"], env={**env, "SKY_MODEL": str(tmp_path / "sky.csv"), "FILE_PREFIX": "a_"})
    assert first.returncode == 0, first.stderr
    truth = tmp_path / "testing" / "a_truth.fits"
    table_ = Table.read(truth, hdu="TRUTH")
    assert table_["NU_EFF"][1] == pytest.approx(1.304e9 + 1.5 * 17.75e6) and table_["SPEC_INDX"][1] == 0.0
    np.testing.assert_allclose(table_["S_INT_Q"], [0.1, 0, 0])
    assert table_["DC_MAJ"][1] * 3600 == pytest.approx(30.0) and table_["IM_PA"].unit == u.deg

    from srcnet_sim.sky.catalogues import read_catalogue, read_mightee_fits

    again, original = read_mightee_fits(truth), read_catalogue(tmp_path / "sky.csv")
    np.testing.assert_allclose(again.ra_rad, original.ra_rad, rtol=1e-15)
    np.testing.assert_allclose(again.stokes_at(np.array([1.3e9, 1.4e9])), original.stokes_at(np.array([1.3e9, 1.4e9])), rtol=1e-14)
    np.testing.assert_allclose(again.major_fwhm_rad, original.major_fwhm_rad, rtol=1e-14)
    for name in ("line_flux_jy_hz", "line_freq_hz", "line_w20_hz", "line_sigma_hz"):
        np.testing.assert_allclose(getattr(again, name), getattr(original, name), rtol=1e-14)
    assert table_["LINE_FLUX_KMS"][2] == pytest.approx(2e7 / (1.33e9 / 299_792.458)) and table_["LINE_W20_KMS"][2] == pytest.approx(4000.0)

    second = run_cli(["run", "--vis"], env={**env, "SKY_MODEL": str(truth), "FILE_PREFIX": "b_"})
    assert second.returncode == 0, second.stderr
    data = []
    for prefix in ("a_", "b_"):
        with table(str(unpack_ms(tmp_path / "testing" / f"{prefix}measurements.ms.tar", tmp_path / prefix)), ack=False) as main:
            data.append(main.getcol("DATA"))
    assert np.abs(data[0]).max() > 0.1
    assert np.abs(data[1] - data[0]).max() <= 1e-6 * np.abs(data[0]).max()


def test_mixed_baselines_see_the_mean_of_the_beam_products():
    """AA* (MeerKAT 13.5 m + SKA 15 m): the gain is the mean of E_p E_q over all written baselines (explicit loop)."""
    from srcnet_sim.simulate.apparent import baseline_mean_gain
    from srcnet_sim.instrument.beams import dish_beams
    from srcnet_sim.simulate.predict import baseline_pairs
    from srcnet_sim.instrument import load_telescope

    telescope = load_telescope("SKA-MID-AAstar")
    freq = np.array([1.3e9, 1.4e9])
    offset = np.radians([0.0, 0.3, 0.6])
    beams, dish_type = dish_beams("gaussian", offset, freq, telescope.diameters_m)
    for auto in (False, True):
        ant1, ant2 = baseline_pairs(telescope.n_dish, auto)
        got = baseline_mean_gain(beams, dish_type, ant1, ant2)
        fwhm = 1.25 * C / (freq[:, None, None] * telescope.diameters_m[None, :, None])  # (chan, dish, 1)
        e = np.exp(-2 * np.log(2) * (offset[None, None, :] / fwhm) ** 2)  # voltage beam per dish
        explicit = np.mean([e[:, p] * e[:, q] for p, q in zip(ant1, ant2, strict=True)], axis=0)
        np.testing.assert_allclose(got, explicit, rtol=1e-12)
    assert got[:, 0] == pytest.approx(1.0)
    power_fwhm = 1.25 * C / (1.3e9 * np.array([13.5, 15.0]))
    meerkat, ska = np.exp(-4 * np.log(2) * (offset[2] / power_fwhm) ** 2)
    assert ska < got[0, 2] < meerkat  # between the two dish types' power beams (the smaller dish sees wider)


def test_expected_noise_of_a_noise_only_image(tmp_path: Path):
    """SSNOISE (from the weights) against the measured rms of a noise-only dirty image, and the radiometer equation."""
    write_csv_sky(tmp_path / "sky.csv", [(RA0, DEC0, 1e-9)])
    # The rms of one noise image of a small array scatters by several per cent around its expectation (the image does
    # not cover whole fringes of every sample): compare the mean variance of four independent noise realisations.
    steps = 12
    ratios = []
    for seed in (1, 2, 3, 4):
        out = tmp_path / f"seed{seed}"
        out.mkdir()
        env = {"OUT_DIR": str(out), "TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": str(steps), "SEED": str(seed),
               "SKY_MODEL": str(tmp_path / "sky.csv"), "NOISE": "on", **IMAGE}
        result = run_cli(["run", "--vis", "--dirty"], env=env)
        assert result.returncode == 0, result.stderr
        dirty = out / "testing" / "dirty.fits"
        ratios.append(np.var(fits.getdata(dirty)) / fits.getheader(dirty)["SSNOISE"] ** 2)
    print("variance / SSNOISE^2 per realisation:", np.round(ratios, 3))
    assert np.sqrt(np.mean(ratios)) == pytest.approx(1.0, rel=0.05), ratios
    tmp_path = tmp_path / "seed1"
    ms = unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "ms")
    natural = run_cli(["image", str(ms), "--npixel", "320", "--cellsize-arcsec", "5", "--niter", "0", "--weighting", "natural",
                       "--no-preview", "--out-dir", str(tmp_path), "--name", "nat"])
    assert natural.returncode == 0, natural.stderr
    # Radiometer equation: SEFD = 2 k (Tsys/eta) / A of a 15 m dish, sigma = SEFD / sqrt(2 dnu dt) per real part of XX or
    # YY; Stokes I halves the variance; natural weighting of N equal samples divides it by N.
    sefd = 2 * 1.380649e-23 * (20 / 0.9) / (np.pi * 7.5**2) / 1e-26
    sigma = sefd / np.sqrt(2 * 17.75e6 * 4 * 3600 / steps)
    n_samples = steps * 4 * 8 * 7 // 2
    assert fits.getheader(tmp_path / "nat-dirty.fits")["SSNOISE"] == pytest.approx(sigma / np.sqrt(2 * n_samples), rel=1e-6)


def test_qa_without_pybdsf_is_one_line_and_the_run_goes_on(field: dict, tmp_path: Path):
    """`import bdsf` fails (a package on PYTHONPATH that raises ImportError): --qa says so in one line, exit 4,
    every other product is staged with its .meta; without --qa the QA is only skipped."""
    shim = tmp_path / "shim" / "bdsf"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    import os

    env = {**field["env"], "OUT_DIR": str(tmp_path), "PYTHONPATH": f"{shim.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = run_cli(["run", "--vis", "--clean", "--truth", "--qa"], env=env)
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("srcnet-sim: error: --qa: PyBDSF cannot be imported (blocked by the test); "
                                                      "pip install bdsf (or the package's qa extra: pip install 'srcnet-sim[qa]')")
    assert sorted(p.name for p in (tmp_path / "testing").iterdir()) == [
        "f_cleaned.fits", "f_cleaned.fits.meta", "f_measurements.ms.tar", "f_measurements.ms.tar.meta",
        "f_truth.fits", "f_truth.fits.meta"]
    quiet = run_cli(["run", "--clean", "--overwrite"], env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "qa: skipped, PyBDSF is not installed" in quiet.stderr


def test_qa_of_hostile_images_is_one_line(field: dict, tmp_path: Path):
    """A blank image (PyBDSF fails on it) and a table given as the image: one line each, exit 4, no traceback."""
    cleaned = field["staged"] / "f_cleaned.fits"
    blank = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.zeros((1, 1, 64, 64), dtype=np.float32), header=fits.getheader(cleaned)).writeto(blank)
    truth = field["staged"] / "f_truth.fits"
    for image, says in ((blank, "--qa: PyBDSF failed on blank.fits: "), (truth, "--qa: ")):
        result = run_cli(["qa", str(image), str(truth), "--out-dir", str(tmp_path)])
        assert result.returncode == 5
        assert result.stderr.strip().splitlines()[-1].startswith(f"srcnet-sim: error: {says}")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
