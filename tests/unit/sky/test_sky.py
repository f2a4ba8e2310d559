"""Sky models: synthetic field statistics, catalogue readers, the filter radius."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from conftest import write_csv_sky
from srcnet_sim.errors import UserInputError
from srcnet_sim.sky.catalogues import read_catalogue
from srcnet_sim.sky.resolve import load_sky_model
from srcnet_sim.sky.synthetic import synthetic_field

RA0, DEC0 = np.radians(150.12), np.radians(2.21)
ARCSEC = np.pi / 180 / 3600


def test_synthetic_field_is_seeded_and_inside_radius():
    a = synthetic_field(RA0, DEC0, 0.05, 5000, seed=3)
    b = synthetic_field(RA0, DEC0, 0.05, 5000, seed=3)
    c = synthetic_field(RA0, DEC0, 0.05, 5000, seed=4)
    assert len(a) == 5000
    np.testing.assert_array_equal(a.stokes_i_jy, b.stokes_i_jy)
    assert not np.array_equal(a.stokes_i_jy, c.stokes_i_jy)
    assert a.angular_distance_rad(RA0, DEC0).max() <= 0.05 + 1e-12


def test_synthetic_field_looks_like_the_radio_sky():
    sky = synthetic_field(RA0, DEC0, 0.05, 20000, seed=1)
    assert np.mean(sky.spectral_index) == pytest.approx(-0.7, abs=0.01)
    assert 0.08 < np.mean(sky.is_gaussian) < 0.12
    assert sky.stokes_i_jy.min() >= 20e-6 and sky.stokes_i_jy.max() <= 1.0
    # Steep counts: most sources are faint, the median well below 1 mJy.
    assert np.median(sky.stokes_i_jy) < 1e-4
    # Uniform on the cap: half the sources inside radius / sqrt(2).
    inner = np.mean(sky.angular_distance_rad(RA0, DEC0) < 0.05 / np.sqrt(2))
    assert inner == pytest.approx(0.5, abs=0.02)


def test_oskar_text_reader(tmp_path: Path):
    path = tmp_path / "sky.osm"
    path.write_text("# RA Dec I Q U V freq alpha RM maj min pa\n150.1 2.2 1.5 0.1 0 0 1.4e9 -0.7 0 4 2 30\n150.2 2.3 0.2\n")
    sky = read_catalogue(path)
    assert len(sky) == 2
    assert sky.stokes_i_jy.tolist() == [1.5, 0.2]
    assert sky.major_fwhm_rad[0] == pytest.approx(4 * ARCSEC)
    assert sky.position_angle_rad[0] == pytest.approx(np.radians(30))
    # Spectral scaling: S(f) = S0 (f/f0)^alpha.
    assert sky.stokes_at(np.array([2.8e9]))[0, 0, 0] == pytest.approx(1.5 * 2 ** -0.7)
    # No reference frequency: flat spectrum.
    assert sky.stokes_at(np.array([2.8e9]))[0, 0, 1] == pytest.approx(0.2)


def test_csv_reader_accepts_header_names(tmp_path: Path):
    path = write_csv_sky(tmp_path / "sky.csv", [(150.1, 2.2, 1.0, -0.5)], header="RA,Dec,flux_jy,spectral_index")
    sky = read_catalogue(path)
    assert sky.spectral_index.tolist() == [-0.5]


def write_mightee(path: Path) -> Path:
    """A small FITS catalogue in the MIGHTEE Level-1 layout (units as in the release)."""
    table = Table({
        "NAME": ["A", "B", "far"],
        "RA": [150.12, 150.13, 160.0], "DEC": [2.21, 2.20, 2.21],
        "S_PEAK": [1e-3, 2e-3, 5e-3], "NU_EFF": [1.28e9] * 3,
        "IM_MAJ": [5.0, 0.0, 0.0], "IM_MIN": [3.0, 0.0, 0.0], "IM_PA": [45.0, 0.0, 0.0],
    })
    table["RA"].unit = table["DEC"].unit = "deg"
    table["S_PEAK"].unit = "Jy/beam"
    table["NU_EFF"].unit = "Hz"
    table["IM_MAJ"].unit = table["IM_MIN"].unit = "arcsec"
    table["IM_PA"].unit = "deg"
    table.write(path, format="fits")
    return path


def test_mightee_catalogue_with_seed_mapping_and_filter(tmp_path: Path):
    path = write_mightee(tmp_path / "mightee.fits")
    sky = load_sky_model("MIGHTEE_L1", str(path), RA0, DEC0, np.radians(1.0), 0, 0)
    assert len(sky) == 2  # the source 10 deg away is dropped
    assert sky.stokes_i_jy.tolist() == [1e-3, 2e-3]
    assert sky.ref_freq_hz.tolist() == [1.28e9, 1.28e9]
    assert sky.major_fwhm_rad[0] == pytest.approx(5 * ARCSEC)


def test_fits_without_mightee_columns(tmp_path: Path):
    path = tmp_path / "other.fits"
    Table({"X": [1.0]}).write(path)
    with pytest.raises(UserInputError, match="^SKY_MODEL: .*lacks the MIGHTEE columns"):
        read_catalogue(path)


def test_catalogue_with_nothing_in_the_field(tmp_path: Path):
    path = write_csv_sky(tmp_path / "sky.csv", [(10.0, -40.0, 1.0)])
    with pytest.raises(UserInputError, match="^SKY_MODEL: no source"):
        load_sky_model(str(path), None, RA0, DEC0, 0.05, 0, 0)
