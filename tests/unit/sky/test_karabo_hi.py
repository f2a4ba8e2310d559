"""Karabo's HI line-emission catalogue (HDF5, sky.karabo_hi): its layout written here with h5py from known values,
read back against the analytic conversion, its errors, and a run's sky from it equal to the same sky as CSV."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import write_csv_sky
from srcnet_sim.config import load_settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.run.plan import plan
from srcnet_sim.simulate.observation import simulate
from srcnet_sim.sky.catalogues import read_catalogue
from srcnet_sim.sky.karabo_hi import GAUSS_FLUX_PER_PEAK_W20, KARABO_HI_DATASETS, KARABO_HI_W20_KMS
from srcnet_sim.sky.lines import W20_PER_SIGMA, channel_line_flux
from srcnet_sim.sky.resolve import load_sky_model

HI_HZ = 1_420_405_751.768
C_M_S = 299_792_458.0
# Karabo's sample catalogue as its notebook recorded it (karabo/examples/HIIM_Img_Recovery.ipynb, i4Ds/Karabo-Pipeline
# commit e767cb2877eecb0611a9782c24253a04766e9ee1): `list(catalog.keys())` and `catalog["Flux"].attrs["Units"]`.
KARABO_KEYS = ["Declination", "Flux", "Observed Redshift", "Right Ascension"]
KARABO_FLUX_UNITS = "J/m²/s = 10^(26)*Jy*Hz"
RA = np.array([20.0, 20.5, 21.4, 359.9])
DEC = np.array([-30.0, -31.4, -29.5, 89.0])
Z = np.array([0.8, 0.9, 1.0, 0.0])
FLUX_W_M2 = np.array([1.0e-26, 3.5e-25, 2.0e-27, 4.0e-26])  # integrated line fluxes, W m^-2


def write_karabo(path: Path, datasets: dict[str, np.ndarray] | None = None, units: object = KARABO_FLUX_UNITS) -> Path:
    """An HDF5 file in Karabo's layout: 1-D float64 datasets at the root, a Units attribute on Flux (None: none)."""
    datasets = {"Right Ascension": RA, "Declination": DEC, "Flux": FLUX_W_M2, "Observed Redshift": Z} \
        if datasets is None else datasets
    with h5py.File(path, "w") as h5:
        for name, values in datasets.items():
            h5.create_dataset(name, data=values)
        if units is not None and isinstance(h5.get("Flux"), h5py.Dataset):
            h5["Flux"].attrs["Units"] = units
    return path


def test_our_dataset_names_are_karabos():
    assert sorted(KARABO_HI_DATASETS.values()) == KARABO_KEYS


def test_every_field_follows_the_analytic_conversion(tmp_path: Path):
    sky = read_catalogue(write_karabo(tmp_path / "hi.h5"))
    nu = HI_HZ / (1.0 + Z)
    np.testing.assert_allclose(sky.ra_rad, np.radians(RA), rtol=1e-15)
    np.testing.assert_allclose(sky.dec_rad, np.radians(DEC), rtol=1e-15)
    np.testing.assert_allclose(sky.line_freq_hz, nu, rtol=1e-15)
    np.testing.assert_allclose(sky.line_flux_jy_hz, FLUX_W_M2 * 1e26, rtol=1e-14)  # 1 W m^-2 = 1e26 Jy Hz
    np.testing.assert_allclose(sky.line_w20_hz, KARABO_HI_W20_KMS * 1e3 * nu / C_M_S, rtol=1e-14)
    np.testing.assert_array_equal(sky.line_sigma_hz, 0.0)  # a Gaussian line
    for name in ("stokes_i_jy", "stokes_q_jy", "stokes_u_jy", "stokes_v_jy", "ref_freq_hz", "spectral_index",
                 "major_fwhm_rad", "minor_fwhm_rad", "position_angle_rad"):
        np.testing.assert_array_equal(getattr(sky, name), 0.0)  # point sources, no continuum
    assert sky.first_problem() is None


@pytest.mark.parametrize(("units", "jy_hz_per_unit"), [
    ("Jy Hz", 1.0), ("W/m^2", 1e26), ("W m-2", 1e26), ("J/m^2/s", 1e26), (b"J/m\xc2\xb2/s", 1e26),
    (np.bytes_(b"erg/s/cm2"), 1e-3 * 1e26), ("mJy Hz", 1e-3),
])
def test_an_integrated_flux_in_any_energy_flux_unit(tmp_path: Path, units, jy_hz_per_unit):
    sky = read_catalogue(write_karabo(tmp_path / "hi.hdf5", units=units))
    np.testing.assert_allclose(sky.line_flux_jy_hz, FLUX_W_M2 * jy_hz_per_unit, rtol=1e-12)


def test_a_flux_density_is_the_lines_peak(tmp_path: Path):
    """Jy (Karabo's reading of Flux): F = S sqrt(2 pi) W20 / 3.5885; a narrow channel at the centre shows S."""
    peak = np.array([0.5, 2.0, 1e-3, 7.0])
    sky = read_catalogue(write_karabo(tmp_path / "hi.H5", dict(zip(KARABO_KEYS, (DEC, peak, Z, RA))), units="Jy"))
    w20 = KARABO_HI_W20_KMS * 1e3 * sky.line_freq_hz / C_M_S
    np.testing.assert_allclose(sky.line_flux_jy_hz, peak * np.sqrt(2 * np.pi) * w20 / W20_PER_SIGMA, rtol=1e-12)
    assert GAUSS_FLUX_PER_PEAK_W20 == pytest.approx(np.sqrt(2 * np.pi) / (2 * np.sqrt(2 * np.log(5))), rel=1e-15)
    for k in range(len(peak)):
        got = channel_line_flux(sky.line_flux_jy_hz[k:k + 1], sky.line_freq_hz[k:k + 1], sky.line_w20_hz[k:k + 1],
                                sky.line_sigma_hz[k:k + 1], sky.line_freq_hz[k:k + 1], 10.0)
        assert got[0, 0] == pytest.approx(peak[k], rel=1e-6)
    mjy = read_catalogue(write_karabo(tmp_path / "mjy.h5", dict(zip(KARABO_KEYS, (DEC, peak, Z, RA))), units="mJy"))
    np.testing.assert_allclose(mjy.line_flux_jy_hz, sky.line_flux_jy_hz * 1e-3, rtol=1e-12)


def test_no_units_attribute_is_jy_as_karabo_reads_it_with_a_warning(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING):
        bare = read_catalogue(write_karabo(tmp_path / "bare.h5", units=None))
    assert "no 'Units' attribute" in caplog.text and "read as Jy" in caplog.text
    jy = read_catalogue(write_karabo(tmp_path / "jy.h5", units="Jy"))
    np.testing.assert_array_equal(bare.line_flux_jy_hz, jy.line_flux_jy_hz)


def test_the_assumed_width_is_that_of_an_m_star_galaxy_at_60_degrees():
    """KARABO_HI_W20_KMS: SYNTHETIC_HI's relations for log M_HI = 9.94 at cos i = 0.5, 268 km/s, rounded."""
    from srcnet_sim.sky.lines import disc_w20_hz
    from srcnet_sim.sky.synthetic_hi import BARYON_PER_HI, BTFR_MSUN_PER_KMS4, HIMF_LOG_MSTAR

    v_los = (BARYON_PER_HI * 10**HIMF_LOG_MSTAR / BTFR_MSUN_PER_KMS4) ** 0.25 * np.sin(np.radians(60.0))
    w20 = float(disc_w20_hz(np.array([v_los]), np.array([10.0]))[0])  # km/s as the unit: the profile scales
    assert 265.0 < w20 < 271.0 and abs(KARABO_HI_W20_KMS - w20) < 5.0


@pytest.mark.parametrize(("change", "phrase"), [
    (lambda d: d.pop("Observed Redshift"), "has no dataset 'Observed Redshift'"),
    (lambda d: d.update({"Flux": FLUX_W_M2[:3]}), "datasets differ in length"),
    (lambda d: d.update({"Flux": np.array([1e-26, np.nan, 1e-26, 1e-26])}), "'Flux' has nan at source #2"),
    (lambda d: d.update({"Right Ascension": np.array([np.inf, 1.0, 2.0, 3.0])}), "non-finite"),
    (lambda d: d.update({"Declination": np.array([-30.0, 95.0, 0.0, 0.0])}), "within -90..90 deg"),
    (lambda d: d.update({"Observed Redshift": np.array([0.5, 0.5, -1.0, 0.5])}), "a redshift is > -1"),
    (lambda d: d.update({"Flux": np.ones((4, 2))}), "must be a 1-D array of numbers"),
    (lambda d: d.update({"Declination": np.array([b"a", b"b", b"c", b"d"])}), "must be a 1-D array of numbers"),
    (lambda d: d.update({k: np.zeros(0) for k in KARABO_KEYS}), "holds no sources"),
])
def test_a_bad_catalogue_is_one_line_naming_sky_model(tmp_path: Path, change, phrase):
    datasets = dict(zip(KARABO_KEYS, (DEC, FLUX_W_M2, Z, RA)))
    change(datasets)
    path = write_karabo(tmp_path / "bad.h5", datasets)
    with pytest.raises(UserInputError) as error:
        read_catalogue(path)
    assert error.value.setting == "SKY_MODEL" and phrase in str(error.value) and "\n" not in str(error.value)
    assert str(path) in str(error.value)


def test_other_bad_files_are_one_line_too(tmp_path: Path):
    cases = {}
    (tmp_path / "text.h5").write_text("ra,dec\n1,2\n")
    cases["text.h5"] = "is not a readable HDF5 file"
    (tmp_path / "dir.hdf5").mkdir()
    cases["dir.hdf5"] = "is a directory"
    write_karabo(tmp_path / "kelvin.h5", units="K")
    cases["kelvin.h5"] = "has Units 'K'"
    with h5py.File(tmp_path / "group.h5", "w") as h5:
        for name, values in zip(KARABO_KEYS, (DEC, FLUX_W_M2, Z, RA)):
            if name == "Flux":  # a group of that name, holding the fluxes
                h5.create_group(name).create_dataset("x", data=values)
            else:
                h5.create_dataset(name, data=values)
    cases["group.h5"] = "has no dataset 'Flux'"
    for name, phrase in cases.items():
        with pytest.raises(UserInputError) as error:
            read_catalogue(tmp_path / name)
        message = str(error.value)
        assert error.value.setting == "SKY_MODEL" and phrase in message and "\n" not in message, message


# The same four lines as CSV (our own column names) and in Karabo's layout.
CSV_HEADER = "ra_deg,dec_deg,line_flux_jy_hz,redshift,w20_kms"
FIELD_RA, FIELD_DEC = 150.12, 2.21
BAND = {"START_FREQ_HZ": "1.399e9", "END_FREQ_HZ": str(1.399e9 + 40.5 * 100e3), "FREQ_INC_HZ": "100e3"}


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    ra = FIELD_RA + np.array([0.03, -0.05, 0.0, 3.0])  # the last is far outside the field
    dec = FIELD_DEC + np.array([-0.02, 0.01, 0.04, 0.0])
    z = HI_HZ / (1.399e9 + np.array([12.3, 20.0, 31.7, 20.0]) * 100e3) - 1.0
    flux = np.array([4e-22, 1e-22, 2.5e-22, 1e-22])  # W m^-2: 4e4 Jy Hz ...
    csv = write_csv_sky(tmp_path / "hi.csv", list(zip(ra, dec, flux * 1e26, z, np.full(4, KARABO_HI_W20_KMS))),
                        header=CSV_HEADER)
    h5 = write_karabo(tmp_path / "hi.h5", dict(zip(KARABO_KEYS, (dec, flux, z, ra))), units="W/m^2")
    return csv, h5


def test_load_sky_model_takes_it_as_it_takes_the_csv(tmp_path: Path):
    csv, h5 = _pair(tmp_path)
    freq = 1.399e9 + np.arange(40) * 100e3
    args = (np.radians(FIELD_RA), np.radians(FIELD_DEC), np.radians(1.0), 1, 1, freq)
    want, got = load_sky_model(str(csv), None, *args), load_sky_model(str(h5), None, *args)
    assert len(got) == len(want) == 3
    for field in fields(got):
        np.testing.assert_allclose(getattr(got, field.name), getattr(want, field.name), rtol=1e-13, atol=0,
                                   err_msg=field.name)
    bad = write_karabo(tmp_path / "bad.h5", dict(zip(KARABO_KEYS, (DEC, FLUX_W_M2, np.full(4, -2.0), RA))))
    with pytest.raises(UserInputError, match="SKY_MODEL: .*redshift is > -1"):
        load_sky_model(str(bad), None, *args)


def test_a_run_simulates_it_as_it_simulates_the_csv(tmp_path: Path):
    """SKY_MODEL=<file>.h5 through the plan and the simulator: the visibilities of the CSV twin."""
    csv, h5 = _pair(tmp_path)
    env = {"TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "2", "SMEARING": "off", "PRECISION": "double",
           "BEAM": "none", **BAND}  # the default phase centre: FIELD_RA, FIELD_DEC
    runs = [plan(load_settings(environ={**env, "SKY_MODEL": str(path)})).observation.with_geometry()
            for path in (csv, h5)]
    for a, b in zip(simulate(runs[0]), simulate(runs[1]), strict=True):
        assert np.abs(a.vis).max() > 0
        np.testing.assert_allclose(b.vis, a.vis, rtol=0, atol=1e-12 * np.abs(a.vis).max())
