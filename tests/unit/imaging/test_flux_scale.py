"""Flux scale of dirty, residual and restored images for every weighting, with the seed's cell.

At the seed's cell (1.9 arcsec) the longest AA2 baselines (108 km) fall off the uv grid. A sample
the grid cannot hold is left out under every weighting (WSClean and CASA do the same); the checks:
a known flux (1 Jy point source on a pixel centre reads 1 Jy/beam in the dirty and restored
images), and WSClean (Debian `wsclean`, wgridder) on the same MS with a source between pixels.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.imaging.clean import CleanParameters
from srcnet_sim.imaging.imager import ImagingParameters, make_images
from srcnet_sim.imaging.msdata import read_visibilities

NPIX = 512
CELL_ARCSEC = 1.9
CELL_RAD = np.radians(CELL_ARCSEC / 3600)
RA0, DEC0 = 150.12, 2.21
OFFSET_ARCSEC = 30.0  # 15.8 pixels east of the centre: between pixel centres
C = 299_792_458.0
WSCLEAN_WEIGHT = {"natural": ["natural"], "uniform": ["uniform"], "briggs": ["briggs", "0"]}
CLEAN = CleanParameters(niter=2000, mgain=0.8, auto_threshold=0.0, threshold_jy=1e-3)


@pytest.fixture(scope="module")
def one_source_ms(tmp_path_factory):
    """AA2, 6 time steps over 4 h, 4 channels, one 1 Jy source 30 arcsec east; no beam, no smearing, no noise."""
    out = tmp_path_factory.mktemp("flux")
    sky = write_csv_sky(out / "sky.csv", [(RA0 + OFFSET_ARCSEC / 3600 / np.cos(np.radians(DEC0)), DEC0, 1.0)])
    env = {"OUT_DIR": str(out), "SKY_MODEL": str(sky), "TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "6",
           "OBS_LENGTH_HOURS": "4", "BEAM": "none", "SMEARING": "off", "PRECISION": "double", "RUCIO_NAMESPACE": "sim"}
    result = run_cli(["run", "--vis"], env=env)
    assert result.returncode == 0, result.stderr
    return unpack_ms(out / "sim" / "measurements.ms.tar", out / "unpacked"), out


def params(weighting: str) -> ImagingParameters:
    return ImagingParameters(NPIX, CELL_RAD, weighting, robust=0.0, allow_uv_cut=True)


@pytest.mark.parametrize("weighting", ["natural", "uniform", "briggs"])
def test_point_source_on_a_pixel_reads_its_flux(one_source_ms, weighting: str):
    """The MS's UVW with exact visibilities of a 1 Jy source on a pixel centre (SIN: l = -dx cell, m = dy cell)."""
    vis = read_visibilities(one_source_ms[0])
    dx, dy = -40, 25
    l, m = -dx * CELL_RAD, dy * CELL_RAD
    u, v, w = (vis.uvw_m.T[:, :, None] * vis.freq_hz[None, None, :] / C)
    exact = np.exp(2j * np.pi * (u * l + v * m + w * (np.sqrt(1 - l * l - m * m) - 1))).astype(np.complex64)
    images = make_images(dataclasses.replace(vis, vis=exact), params(weighting), CLEAN)
    assert images.sampled_weight_fraction < 0.9  # the cut is real
    y, x = NPIX // 2 + dy, NPIX // 2 + dx
    assert images.dirty[y, x] == pytest.approx(1.0, abs=1e-3)
    assert images.dirty.max() == images.dirty[y, x]
    assert images.restored[y, x] == pytest.approx(1.0, abs=0.01)
    assert np.abs(images.clean.residual).max() < 0.01
    assert images.clean.model.sum() == pytest.approx(1.0, abs=0.01)


@pytest.fixture(scope="module")
def wsclean_images(one_source_ms):
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    ms, out = one_source_ms
    images = {}
    for weighting, args in WSCLEAN_WEIGHT.items():
        name = out / f"ws-{weighting}"
        subprocess.run(["wsclean", "-quiet", "-use-wgridder", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
                        "-weight", *args, "-niter", str(CLEAN.niter), "-mgain", str(CLEAN.mgain), "-threshold",
                        str(CLEAN.threshold_jy), "-name", str(name), str(ms)], check=True, capture_output=True, timeout=600)
        images[weighting] = {kind: np.squeeze(fits.getdata(f"{name}-{kind}.fits")) for kind in ("dirty", "image", "residual")}
    return images


@pytest.mark.parametrize("weighting", ["natural", "uniform", "briggs"])
def test_flux_scale_matches_wsclean(one_source_ms, wsclean_images, weighting: str):
    ws = wsclean_images[weighting]
    ours = make_images(read_visibilities(one_source_ms[0]), params(weighting), CLEAN)
    peak = np.unravel_index(ws["dirty"].argmax(), ws["dirty"].shape)
    assert np.unravel_index(ours.dirty.argmax(), ours.dirty.shape) == peak
    assert ours.dirty.max() == pytest.approx(ws["dirty"].max(), rel=0.002)
    assert np.corrcoef(ours.dirty.ravel(), ws["dirty"].ravel())[0, 1] >= 0.999
    assert ours.restored.max() == pytest.approx(ws["image"].max(), rel=0.02)
    assert ours.restored.max() == pytest.approx(1.0, abs=0.05)
    assert np.abs(ours.clean.residual).max() <= max(0.01, 2 * np.abs(ws["residual"]).max())
