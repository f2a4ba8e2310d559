"""Imaging: products of `run` and `image`, FITS headers, quick-looks, bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from casacore.tables import table, taql

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.beam import Beam, fit_beam
from srcnet_sim.imaging.imager import ImagingParameters, make_images
from srcnet_sim.imaging.msdata import read_visibilities
from srcnet_sim.imaging.weighting import imaging_weights

SMALL = {"TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "3", "SYNTHETIC_SOURCES": "30", "IMAGING_NPIXEL": "256",
         "SMEARING": "off"}


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms")
    sky = write_csv_sky(out / "sky.csv", [(150.12, 2.21, 1.0), (150.121, 2.2115, 0.5)])
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out), "SKY_MODEL": str(sky), "BEAM": "none", **SMALL})
    assert result.returncode == 0, result.stderr
    return unpack_ms(out / "testing" / "measurements.ms.tar", out / "unpacked")


def test_run_with_clean_only_keeps_needed_products_out_of_out_dir(tmp_path: Path):
    out = tmp_path / "out"
    scratch = tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    result = run_cli(["run", "--clean"], env={"OUT_DIR": str(out), "TMPDIR": str(scratch), "FILE_PREFIX": "x_", **SMALL})
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "testing").iterdir()) == ["x_cleaned.fits", "x_cleaned.fits.meta"]
    assert list(scratch.iterdir()) == []  # the MS and dirty image lived there and are gone


def test_fits_header_is_what_wsclean_writes(tmp_path: Path):
    out, previews = tmp_path / "out", tmp_path / "previews"
    out.mkdir()
    previews.mkdir()
    assert run_cli(["run", "--dirty", "--clean", "--preview-dir", str(previews)], env={"OUT_DIR": str(out), **SMALL}).returncode == 0
    for name in ("dirty.fits", "cleaned.fits"):
        path = out / "testing" / name
        header = fits.getheader(path)
        assert [header[f"CTYPE{i}"] for i in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
        assert header["CRPIX1"] == 129 and header["CRVAL4"] == 1
        # MFS: CRVAL3 the centre of the band, CDELT3 its width (4 channels of 17.75 MHz from 1.304 GHz).
        assert header["CRVAL3"] == pytest.approx(1.304e9 - 17.75e6 / 2 + 2 * 17.75e6)
        assert header["CDELT3"] == pytest.approx(4 * 17.75e6)
        assert header["BUNIT"] == "JY/BEAM" and header["BMAJ"] > header["BMIN"] > 0
        assert header["TELESCOP"] == "SKA-Mid AA2" and header["DATE-OBS"].startswith("2020-04-26T16:36:00")
        assert header["OBSRA"] == pytest.approx(150.12) and header["OBSDEC"] == pytest.approx(2.21)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            WCS(header)
        assert (previews / name).with_suffix(".png").stat().st_size > 10_000  # quick-looks go outside the staging area


def test_image_command_on_an_existing_ms(small_ms: Path, tmp_path: Path):
    result = run_cli(["image", str(small_ms), "--npixel", "128", "--cellsize-arcsec", "1.0", "--niter", "5000",
                      "--weighting", "briggs", "--robust", "0.5", "--allow-uv-cut", "--save-residual", "--save-model", "--out-dir", str(tmp_path),
                      "--name", "im"])
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["im-cleaned.fits", "im-cleaned.png", "im-dirty.fits", "im-dirty.png", "im-model.fits", "im-residual.fits"]
    # The brightest pixel of the cleaned image is the 1 Jy source at the phase centre.
    cleaned = fits.getdata(tmp_path / "im-cleaned.fits")[0, 0]
    assert np.unravel_index(np.argmax(cleaned), cleaned.shape) == (64, 64)
    assert cleaned.max() == pytest.approx(1.0, rel=0.02)


def test_weighting_schemes_bracket_each_other(small_ms: Path):
    """Briggs robust -2 is close to uniform, +2 close to natural (as defined by Briggs 1995)."""
    vis = read_visibilities(small_ms)
    args = (vis.uvw_m, vis.freq_hz, vis.weight, 256, np.radians(1 / 3600))
    uniform, natural = imaging_weights(*args, "uniform"), imaging_weights(*args, "natural")
    low, high = imaging_weights(*args, "briggs", -2.0), imaging_weights(*args, "briggs", 2.0)

    used = uniform > 0  # on the weight grid

    def spread(a, b):
        """Coefficient of variation of a / b: 0 when a is b up to a constant factor."""
        ratio = a[used] / b[used]
        return ratio.std() / ratio.mean()

    assert spread(low, uniform) < 0.02 and spread(high, natural) < 0.02
    assert spread(uniform, natural) > 0.3


def test_beam_fit_recovers_a_gaussian():
    cell = np.radians(1 / 3600)
    truth = Beam(major_rad=np.radians(6 / 3600), minor_rad=np.radians(4 / 3600), pa_rad=np.radians(30))
    psf = np.zeros((128, 128))
    kernel = truth.kernel(cell, 40)
    psf[64 - 40 : 64 + 41, 64 - 40 : 64 + 41] = kernel
    for mode in ("wsclean", "full"):
        fit = fit_beam(psf, cell, np.radians(3 / 3600), mode)
        assert fit.major_rad == pytest.approx(truth.major_rad, rel=1e-4)
        assert fit.minor_rad == pytest.approx(truth.minor_rad, rel=1e-4)
        assert fit.pa_rad == pytest.approx(truth.pa_rad, abs=1e-4)


def test_not_an_ms(tmp_path: Path):
    (tmp_path / "x.ms").mkdir()
    with pytest.raises(UserInputError, match="^MS: .* is not a MeasurementSet"):
        read_visibilities(tmp_path / "x.ms")


def test_ms_without_data_column(small_ms: Path, tmp_path: Path):
    copy = tmp_path / "nodata.ms"
    shutil.copytree(small_ms, copy)
    with table(str(copy), readonly=False, ack=False) as t:
        t.removecols(["DATA"])
    with pytest.raises(UserInputError, match="^MS: .* has no DATA column"):
        read_visibilities(copy)


def test_all_flagged(small_ms: Path, tmp_path: Path):
    copy = tmp_path / "flagged.ms"
    shutil.copytree(small_ms, copy)
    taql(f"UPDATE {copy} SET FLAG=True")
    result = run_cli(["image", str(copy), "--cellsize-arcsec", "1"])
    assert result.returncode == 2 and "all data are flagged" in result.stderr


@pytest.mark.parametrize("npix", [31, 33, 16])
def test_bad_image_size(small_ms: Path, npix: int):
    with pytest.raises(UserInputError, match="^--npixel: .* must be even and at least 32"):
        make_images(read_visibilities(small_ms), ImagingParameters(npix, np.radians(1 / 3600)), None)


def test_cell_too_large_says_by_how_much(small_ms: Path, tmp_path: Path):
    result = run_cli(["image", str(small_ms), "--cellsize-arcsec", "30", "--out-dir", str(tmp_path)])
    assert result.returncode == 2
    assert "--cellsize-arcsec: cell 30.000 arcsec samples baselines up to" in result.stderr
    assert "x longer" in result.stderr and "use a cell <=" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_image_larger_than_memory(small_ms: Path):
    with pytest.raises(UserInputError, match="^--npixel: a 200000\\^2 image needs about .* GiB but"):
        make_images(read_visibilities(small_ms), ImagingParameters(200_000, np.radians(1e-3 / 3600)), None)


def test_multiscale_clean_recovers_extended_emission(tmp_path: Path):
    """A 30 x 20 arcsec Gaussian of 1 Jy beside a 0.2 Jy point: multi-scale recovers the total flux,
    and leaves a far smaller residual than point-source cleaning with the same iterations."""
    from srcnet_sim.imaging.clean import CleanParameters

    sky = write_csv_sky(tmp_path / "sky.csv", [(150.12, 2.21, 1.0, 30, 20, 40), (150.125, 2.205, 0.2, 0, 0, 0)],
                        header="ra_deg,dec_deg,i_jy,major_arcsec,minor_arcsec,pa_deg")
    env = {"OUT_DIR": str(tmp_path), "SKY_MODEL": str(sky), "BEAM": "none", "SMEARING": "off", "NOISE": "on",
           "NUM_TIME_STAMPS": "6"}
    assert run_cli(["run", "--vis"], env=env).returncode == 0
    vis = read_visibilities(unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "unpacked"))
    params = ImagingParameters(256, np.radians(1 / 3600), "briggs", 0.0, allow_uv_cut=True)
    point = make_images(vis, params, CleanParameters(niter=5000)).clean
    multi = make_images(vis, params, CleanParameters(niter=5000, multiscale=True)).clean
    assert multi.model.sum() == pytest.approx(1.2, rel=0.01)
    assert multi.residual.std() < 0.5 * point.residual.std()


def test_chunked_imaging_equals_imaging_in_memory(small_ms: Path):
    """Gridding is linear: images summed over chunks of rows equal the images of all rows at once."""
    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.msdata import MeasurementSetSource

    params = ImagingParameters(128, np.radians(1 / 3600), "uniform", allow_uv_cut=True)
    clean = CleanParameters(niter=300)
    whole = make_images(read_visibilities(small_ms), params, clean)
    source = MeasurementSetSource(small_ms, chunk_samples=5000)
    assert source.rows_per_chunk * 4 < 3 * 2016  # several chunks
    chunked = make_images(source, params, clean)
    # Equal within the gridder's accuracy (epsilon 1e-5): different chunks are gridded with different w-planes.
    np.testing.assert_allclose(chunked.dirty, whole.dirty, atol=2e-5 * np.abs(whole.dirty).max())
    np.testing.assert_allclose(chunked.psf, whole.psf, atol=2e-5)
    assert chunked.clean.model.sum() == pytest.approx(whole.clean.model.sum(), rel=1e-4)
    assert chunked.beam.major_rad == pytest.approx(whole.beam.major_rad, rel=1e-4)


def test_imaging_memory_does_not_grow_with_observation_length(tmp_path: Path):
    """Ten times more time steps read in chunks: the peak of Python-side allocations stays the same."""
    import tracemalloc

    from srcnet_sim.imaging.clean import CleanParameters
    from srcnet_sim.imaging.msdata import MeasurementSetSource

    peaks = {}
    for steps in (3, 30):
        out = tmp_path / f"o{steps}"
        out.mkdir()
        env = {"OUT_DIR": str(out), **SMALL, "NUM_TIME_STAMPS": str(steps), "FREQ_INC_HZ": "4e6"}
        assert run_cli(["run", "--vis"], env=env).returncode == 0
        ms = unpack_ms(out / "testing" / "measurements.ms.tar", out / "unpacked")
        source = MeasurementSetSource(ms, chunk_samples=50_000)
        tracemalloc.start()
        make_images(source, ImagingParameters(64, np.radians(2 / 3600), allow_uv_cut=True), CleanParameters(niter=50))
        peaks[steps] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[30] < 1.3 * peaks[3], peaks
