"""Point sources of known flux at known positions, imaged by WSClean (an independent imager)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from conftest import run_cli, unpack_ms, write_csv_sky

NPIX = 512
CELL_ARCSEC = 0.2
# (x, y) FITS pixel (1-based) and flux in Jy: all four quadrants, and the phase centre.
SOURCES = [(100, 300, 1.0), (400, 120, 2.0), (300, 420, 0.5), (160, 90, 0.8), (257, 257, 1.5)]


def image_wcs() -> WCS:
    """The celestial WCS WSClean writes for -size NPIX NPIX -scale CELL around the phase centre."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [150.12, 2.21]
    w.wcs.cdelt = [-CELL_ARCSEC / 3600, CELL_ARCSEC / 3600]
    w.wcs.crpix = [NPIX / 2 + 1, NPIX / 2 + 1]
    return w


@pytest.fixture(scope="module")
def wsclean_images(tmp_path_factory):
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    out = tmp_path_factory.mktemp("wsclean")
    positions = image_wcs().wcs_pix2world([[x, y] for x, y, _ in SOURCES], 1)
    sky = write_csv_sky(out / "sky.csv", [(ra, dec, s) for (ra, dec), (_, _, s) in zip(positions, SOURCES)])
    env = {"OUT_DIR": str(out), "SKY_MODEL": str(sky), "BEAM": "none", "SMEARING": "off", "NUM_TIME_STAMPS": "4"}
    result = run_cli(["run", "--vis"], env=env)
    assert result.returncode == 0, result.stderr
    ms = unpack_ms(out / "testing" / "measurements.ms.tar", out / "unpacked")
    name = out / "img"
    subprocess.run(["wsclean", "-quiet", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
                    "-niter", "20000", "-mgain", "0.8", "-auto-threshold", "0.1", "-weight", "uniform",
                    "-name", str(name), str(ms)], check=True, capture_output=True, timeout=600)
    return fits.getheader(f"{name}-model.fits"), fits.getdata(f"{name}-model.fits")[0, 0]


def test_wsclean_uses_the_expected_grid(wsclean_images):
    header, _ = wsclean_images
    assert header["CRPIX1"] == NPIX / 2 + 1 and header["CRVAL1"] == pytest.approx(150.12)
    assert header["CDELT2"] == pytest.approx(CELL_ARCSEC / 3600)


@pytest.mark.parametrize("x, y, flux", SOURCES)
def test_source_position_within_0p2_pixel_and_flux_within_1pc(wsclean_images, x, y, flux):
    _, model = wsclean_images
    window = model[y - 1 - 3 : y - 1 + 4, x - 1 - 3 : x - 1 + 4]  # 7x7 pixels around the catalogue position
    yy, xx = np.mgrid[-3:4, -3:4]
    total = window.sum()
    assert total == pytest.approx(flux, rel=0.01)
    offset_x, offset_y = (window * xx).sum() / total, (window * yy).sum() / total
    assert np.hypot(offset_x, offset_y) < 0.2


def test_no_flux_elsewhere(wsclean_images):
    _, model = wsclean_images
    assert model.sum() == pytest.approx(sum(s for _, _, s in SOURCES), rel=0.01)
