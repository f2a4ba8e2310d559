"""The one MeasurementSet metadata reader (ms.reader), used by imaging and by the ObsCore records, against
pyuvdata reading the same MS and against the settings that made it."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, unpack_ms
from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.msdata import MeasurementSetSource
from srcnet_sim.vis.reader import read_metadata, scan_main_table
from srcnet_sim.products import obscore

ENV = {"TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "3", "OBS_LENGTH_HOURS": "0.5", "SYNTHETIC_SOURCES": "20",
       "START_FREQ_HZ": "1.3e9", "END_FREQ_HZ": "1.33e9", "FREQ_INC_HZ": "1e7", "PHASE_CENTER_RA_DEG": "150.12",
       "PHASE_CENTER_DEC_DEG": "2.21", "CORRELATIONS": "cross+auto"}


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reader")
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out), **ENV})
    assert result.returncode == 0, result.stderr
    return unpack_ms(out / "testing" / "measurements.ms.tar", out / "unpacked")


def pyuvdata_of(path: Path):
    from pyuvdata import UVData

    uv = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv.read(str(path), data_column="DATA")
    return uv


def test_metadata_agree_with_pyuvdata_and_the_settings(ms: Path):
    meta = read_metadata(ms)
    uv = pyuvdata_of(ms)
    np.testing.assert_allclose(meta.freq_hz, [1.3e9, 1.31e9, 1.32e9])  # channel k at START + k INC, up to END
    np.testing.assert_allclose(meta.freq_hz, uv.freq_array.ravel())
    np.testing.assert_allclose(meta.channel_width_hz, uv.channel_width)
    assert meta.freq_hz.dtype == np.float64 and meta.channel_width_hz.dtype == np.float64
    np.testing.assert_allclose(meta.phase_centre_rad, np.radians([150.12, 2.21]), rtol=0, atol=1e-12)
    centre = uv.phase_center_catalog[uv.phase_center_id_array[0]]
    np.testing.assert_allclose(meta.phase_centre_rad, (centre["cat_lon"], centre["cat_lat"]), rtol=0, atol=1e-12)
    assert meta.corr_types == [9, 10, 11, 12]  # XX, XY, YX, YY; pyuvdata's -5, -7, -8, -6
    assert sorted(uv.polarization_array.tolist()) == [-8, -7, -6, -5]
    # TELESCOPE_NAME is the CASA observatory at the site (what pyuvdata reads); the array's own name is ARRAY_NAME.
    assert uv.telescope.name == "MeerKAT"
    assert meta.telescope_name == "SKA-Mid AA0.5"


def test_main_table_scan_agrees_with_pyuvdata(ms: Path):
    scan = scan_main_table(ms, chunk_rows=7)  # many chunks: the result must not depend on them
    assert scan == scan_main_table(ms)
    from srcnet_sim.imaging.msdata import MeasurementSetSource

    assert MeasurementSetSource(ms, chunk_samples=40).main_scan == scan  # the imager's one pass serves the sidecar
    uv = pyuvdata_of(ms)
    times_s = (np.unique(uv.time_array) - 2400000.5) * 86400.0
    interval_s = 0.5 * 3600 / 3
    np.testing.assert_allclose(np.unique(uv.integration_time), interval_s)
    assert sorted(scan.sample_intervals_s) == pytest.approx(times_s.tolist(), abs=1e-3)
    assert list(scan.sample_intervals_s.values()) == pytest.approx([interval_s] * 3)
    assert scan.start_s == pytest.approx(times_s[0] - interval_s / 2, abs=1e-3)
    assert scan.end_s == pytest.approx(times_s[-1] + interval_s / 2, abs=1e-3)
    assert scan.longest_uv_m == pytest.approx(np.hypot(uv.uvw_array[:, 0], uv.uvw_array[:, 1]).max(), rel=1e-9)


def test_imaging_and_obscore_see_the_same_metadata(ms: Path):
    meta = read_metadata(ms)
    source = MeasurementSetSource(ms)
    np.testing.assert_array_equal(source.freq_hz, meta.freq_hz)
    assert (source.phase_centre_rad, source.telescope_name, source.corr_types) == (
        meta.phase_centre_rad, meta.telescope_name, meta.corr_types)
    ident = obscore.Identity("c", "o", "example.org", "/x", "testing")
    record = obscore.visibility_record(ms, ident, "measurements.ms.tar", 1000)
    assert (record["s_ra"], record["s_dec"]) == tuple(np.degrees(meta.phase_centre_rad))
    assert record["pol_states"] == "/XX/XY/YX/YY/" and record["em_xel"] == 3
    assert record["instrument_name"] == meta.telescope_name
    scan = scan_main_table(ms)
    assert (record["t_min"], record["t_max"]) == (scan.start_s / 86400.0, scan.end_s / 86400.0)
    assert (source.time_range_s[0], source.time_range_s[1]) == pytest.approx((scan.start_s, scan.end_s))


@pytest.mark.parametrize("damage", ["not_a_table", "no_spectral_window"])
def test_a_damaged_ms_is_a_user_error_naming_the_ms(ms: Path, tmp_path: Path, damage: str):
    copy = tmp_path / "copy.ms"
    if damage == "not_a_table":
        copy.mkdir()
        (copy / "table.dat").write_text("not a casacore table")
        with pytest.raises(UserInputError, match=r"^MS: .* is not a MeasurementSet"):
            scan_main_table(copy)
    else:
        shutil.copytree(ms, copy)
        shutil.rmtree(copy / "SPECTRAL_WINDOW")
        with pytest.raises(UserInputError, match=r"^MS: .* is not a MeasurementSet \(no SPECTRAL_WINDOW table\)"):
            read_metadata(copy)
