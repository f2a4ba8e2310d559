"""SRCNet products: sidecars and ObsCore from the files, schema, naming, notification, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from conftest import run_cli, unpack_ms
from srcnet_sim.products import sidecar

SMALL = {"TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "3", "SYNTHETIC_SOURCES": "50", "IMAGING_NPIXEL": "128",
         "OBS_ID": "obs-42", "FILE_PREFIX": "run42_", "RUCIO_NAMESPACE": "sim.test"}
C = 299_792_458.0


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    result = run_cli(["run", "--vis", "--dirty", "--clean", "--notification"], env={"OUT_DIR": str(out), **SMALL})
    assert result.returncode == 0, result.stderr
    return out / "sim.test"


def meta(staged: Path, name: str) -> dict:
    return json.loads((staged / f"{name}.meta").read_text())


def test_staging_area_holds_products_sidecars_and_notification(staged: Path):
    """Only what the ingestor takes: every product with its .meta, the notification; no previews, nothing hidden."""
    assert sorted(p.name for p in staged.iterdir()) == [
        "run42_cleaned.fits", "run42_cleaned.fits.meta", "run42_dirty.fits", "run42_dirty.fits.meta",
        "run42_measurements.ms.tar", "run42_measurements.ms.tar.meta", "run42_notification.json"]


@pytest.mark.parametrize("name", ["run42_measurements.ms.tar", "run42_dirty.fits", "run42_cleaned.fits"])
def test_sidecars_follow_the_schema(staged: Path, name: str):
    document = meta(staged, name)
    assert sidecar.problem(document) is None
    assert (document["namespace"], document["name"], document["lifetime"], document["dataset_name"]) == ("sim.test", name, 86400, "obs-42")
    m = document["meta"]
    assert m["obs_publisher_did"] == f"ivo://test.skao/~?sim.test:{name}"
    assert m["access_url"] == f"https://datalink.ivoa.srcdev.skao.int/rucio/links?id=sim.test:{name}"
    assert m["access_estsize"] == -(-(staged / name).stat().st_size // 1024)
    assert (m["obs_collection"], m["obs_id"]) == ("SKAO/SKAMID", "obs-42")


def test_visibility_obscore_is_read_from_the_ms(staged: Path, tmp_path: Path):
    from casacore.tables import table

    m = meta(staged, "run42_measurements.ms.tar")["meta"]
    ms = unpack_ms(staged / "run42_measurements.ms.tar", tmp_path)
    with table(str(ms), ack=False) as main:
        uvw = main.getcol("UVW")
    longest = np.hypot(uvw[:, 0], uvw[:, 1]).max()
    band_low, band_high = 1.304e9 - 17.75e6 / 2, 1.304e9 + 3.5 * 17.75e6
    assert (m["calib_level"], m["dataproduct_type"], m["pol_states"], m["pol_xel"]) == (1, "visibility", "/XX/XY/YX/YY/", 4)
    assert m["em_min"] == pytest.approx(C / band_high) and m["em_max"] == pytest.approx(C / band_low)
    assert (m["em_xel"], m["t_xel"]) == (4, 3)
    assert m["t_min"] == pytest.approx(Time("2020-04-26T16:36").mjd, abs=1e-8)
    assert m["t_max"] == pytest.approx(Time("2020-04-26T20:36").mjd, abs=1e-8)
    assert (m["t_exptime"], m["t_resolution"]) == (pytest.approx(4 * 3600), pytest.approx(4800))
    assert m["s_resolution"] == pytest.approx(np.degrees(C / band_high / longest) * 3600)
    assert (m["s_ra"], m["s_dec"]) == (pytest.approx(150.12), pytest.approx(2.21))


def test_image_obscore_is_read_from_the_fits_header(staged: Path):
    m = meta(staged, "run42_cleaned.fits")["meta"]
    header = fits.getheader(staged / "run42_cleaned.fits")
    assert (m["calib_level"], m["dataproduct_type"], m["access_format"]) == (3, "image", "image/fits")
    assert (m["s_xel1"], m["s_xel2"]) == (128, 128)
    assert m["s_pixel_scale"] == pytest.approx(abs(header["CDELT2"]) * 3600)
    assert m["s_resolution"] == pytest.approx(header["BMAJ"] * 3600)
    corners = [float(v) for v in m["s_region"].split()[2:]]
    first_corner = WCS(header).celestial.pixel_to_world_values(-0.5, -0.5)
    assert corners[:2] == pytest.approx([float(first_corner[0]), float(first_corner[1])], abs=1e-6)
    assert m["t_max"] > m["t_min"]


def test_notification_is_built_with_the_ska_package(staged: Path):
    from ska_src_mm_notification.models.schemas.srcnet_ingestion import SRCIngestionNotification

    text = (staged / "run42_notification.json").read_text()
    SRCIngestionNotification.model_validate_json(text)
    for name in ("run42_measurements.ms", "run42_dirty.fits", "run42_cleaned.fits"):
        assert name in text


@pytest.mark.parametrize("env, setting", [
    ({"RUCIO_NAMESPACE": "a/b"}, "RUCIO_NAMESPACE"),
    ({"RUCIO_NAMESPACE": "x" * 26}, "RUCIO_NAMESPACE"),
    ({"FILE_PREFIX": "run 1_"}, "FILE_PREFIX"),
    ({"FILE_PREFIX": "_lead"}, "FILE_PREFIX"),
    ({"OBS_ID": "obs/1"}, "OBS_ID"),
])
def test_rucio_naming_rules_are_checked_before_work(tmp_path: Path, env: dict, setting: str):
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(tmp_path), **SMALL, **env})
    assert result.returncode == 2 and f"srcnet-sim: error: {setting}:" in result.stderr
    assert list(tmp_path.iterdir()) == []


def check_staging_area(staging: Path) -> None:
    """Every visible file is complete; every .meta is valid and has its data."""
    if not staging.exists():
        return
    for path in staging.iterdir():
        if path.name.startswith("."):
            continue  # hidden partial names are never paired with a .meta
        if path.suffix == ".meta":
            assert sidecar.problem(json.loads(path.read_text())) is None, path
            assert path.with_name(path.name[: -len(".meta")]).is_file(), f"orphan {path.name}"
        elif path.suffix == ".tar":
            with tarfile.open(path) as archive:
                assert any(n.endswith("table.dat") for n in archive.getnames())
        elif path.suffix == ".fits":
            with fits.open(path) as hdul:
                assert hdul[0].data.shape[-1] == 128
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigkill_at_any_moment_leaves_nothing_partial_and_a_rerun_completes(tmp_path: Path):
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "OPENBLAS_CORETYPE")},
           "OUT_DIR": str(tmp_path), "TMPDIR": str(tmp_path), **SMALL}
    staging = tmp_path / "sim.test"
    rng = np.random.default_rng(7)
    for delay in sorted(rng.uniform(0.5, 9.0, 6)):
        proc = subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", "--dirty", "--clean"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_staging_area(staging)
        if (staging / "run42_cleaned.fits.meta").exists():
            break  # the run finished before the kill; nothing more to interrupt
    result = subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", "--dirty", "--clean", "--overwrite"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    check_staging_area(staging)
    assert sorted(p.name for p in staging.glob("*.meta")) == [
        "run42_cleaned.fits.meta", "run42_dirty.fits.meta", "run42_measurements.ms.tar.meta"]
    assert not [p for p in staging.iterdir() if p.name.startswith(".")]
