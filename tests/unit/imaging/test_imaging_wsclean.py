"""Imaging proof against WSClean on a MeasurementSet written by a third party (pyuvdata).

The MS is built with pyuvdata (its own UVW from the antenna positions) and a plain numpy DFT of
point sources plus seeded noise; WSClean (Debian `wsclean`, with its wgridder) and srcnet-sim
image it with the same size, cell and weighting.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.time import Time

from srcnet_sim.imaging.clean import CleanParameters, robust_sigma
from srcnet_sim.imaging.imager import ImagingParameters, make_images
from srcnet_sim.imaging.msdata import read_visibilities
from srcnet_sim.instrument import load_telescope

NPIX = 512
CELL_ARCSEC = 0.2
RA0, DEC0 = 150.12, 2.21
C = 299_792_458.0
NOISE_JY = 0.05  # per visibility and real component
# Offsets in pixels (x towards lower RA, y north) from the centre pixel, and fluxes in Jy.
SOURCES = [(-150, 40, 0.10), (120, -90, 0.06), (60, 150, 0.04), (-80, -160, 0.08), (0, 0, 0.05)]


def write_pyuvdata_ms(path) -> None:
    from pyuvdata import Telescope, UVData

    tel = load_telescope("SKA-MID-AAstar")
    site = EarthLocation.from_geocentric(*tel.itrf_m.mean(axis=0), unit=u.m)
    origin = np.array([c.to_value(u.m) for c in site.to_geocentric()])
    telescope = Telescope.new(name="SKA-Mid AA*", location=site, antenna_positions=tel.itrf_m - origin,
                              antenna_names=list(tel.station_names), antenna_numbers=np.arange(tel.n_dish),
                              antenna_diameters=tel.diameters_m, feeds=["x", "y"], mount_type="alt-az", instrument="SKA-Mid",
                              update_from_known=False)
    times = Time("2020-04-26T17:30", scale="utc").jd + np.arange(6) * 1200.0 / 86400.0
    freqs = 1.304e9 + np.arange(4) * 17.75e6
    antpairs = [(a, b) for a in range(tel.n_dish) for b in range(a + 1, tel.n_dish)]
    catalog = {0: {"cat_name": "COSMOS", "cat_type": "sidereal", "cat_lon": np.radians(RA0), "cat_lat": np.radians(DEC0),
                   "cat_frame": "fk5", "cat_epoch": 2000.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv = UVData.new(freq_array=freqs, polarization_array=["xx", "yy"], times=times, telescope=telescope,
                        antpairs=antpairs, do_blt_outer=True, integration_time=1200.0, channel_width=17.75e6,
                        phase_center_catalog=catalog, vis_units="Jy", empty=True)
    cell = np.radians(CELL_ARCSEC / 3600)
    # A source sits exactly on a pixel centre of the SIN grid: l = -dx * cell, m = dy * cell.
    l = np.array([-dx * cell for dx, _, _ in SOURCES])
    m = np.array([dy * cell for _, dy, _ in SOURCES])
    n1 = np.sqrt(1 - l**2 - m**2) - 1
    flux = np.array([s for _, _, s in SOURCES])
    # pyuvdata's convention: uvw = x2 - x1 and V = sum S exp(+2 pi i (u l + v m + w (n - 1)) / lambda); it
    # conjugates the data and negates uvw when writing the MS (CASA: uvw = x1 - x2).
    phase = uv.uvw_array @ np.stack([l, m, n1])  # (n_blt, n_src) metres
    vis = np.exp(2j * np.pi * phase[:, None, :] * (freqs[None, :, None] / C)) @ flux  # (n_blt, n_freq)
    rng = np.random.default_rng(3)
    noise = NOISE_JY * (rng.standard_normal((vis.shape[0], 4, 2)) + 1j * rng.standard_normal((vis.shape[0], 4, 2)))
    uv.data_array = (vis[:, :, None] + noise).astype(np.complex64)
    uv.nsample_array[:] = 1.0
    uv.flag_array[:] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv.write_ms(str(path))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    out = tmp_path_factory.mktemp("img")
    ms = out / "pyuvdata.ms"
    write_pyuvdata_ms(ms)
    name = out / "ws"
    subprocess.run(["wsclean", "-quiet", "-use-wgridder", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
                    "-weight", "uniform", "-niter", "50000", "-mgain", "0.8", "-auto-threshold", "3", "-name", str(name), str(ms)],
                   check=True, capture_output=True, timeout=900)
    ws = {kind: np.squeeze(fits.getdata(f"{name}-{kind}.fits")) for kind in ("dirty", "image", "residual", "model")}
    ws_header = fits.getheader(f"{name}-image.fits")
    ours = make_images(read_visibilities(ms), ImagingParameters(NPIX, np.radians(CELL_ARCSEC / 3600), "uniform"),
                       CleanParameters(niter=50000, mgain=0.8, auto_threshold=3.0))
    return ours, ws, ws_header


def test_dirty_images_agree(images):
    ours, ws, _ = images
    assert np.corrcoef(ours.dirty.ravel(), ws["dirty"].ravel())[0, 1] >= 0.999
    assert ours.dirty.max() == pytest.approx(ws["dirty"].max(), rel=0.005)


def test_restoring_beam_matches_wsclean(images):
    ours, _, header = images
    assert np.degrees(ours.beam.major_rad) == pytest.approx(header["BMAJ"], rel=0.02)
    assert np.degrees(ours.beam.minor_rad) == pytest.approx(header["BMIN"], rel=0.02)


def test_clean_recovers_every_bright_source(images):
    """Flux: the restored image at the source (a point source's peak in Jy/beam is its flux).
    Position: the flux-weighted centroid of the clean components around it."""
    ours, _, _ = images
    sigma = robust_sigma(ours.clean.residual)
    centre = NPIX // 2
    yy, xx = np.mgrid[-3:4, -3:4]
    for dx, dy, flux in SOURCES:
        assert flux > 20 * sigma
        assert ours.restored[centre + dy, centre + dx] == pytest.approx(flux, rel=0.02), (dx, dy)
        window = ours.clean.model[centre + dy - 3 : centre + dy + 4, centre + dx - 3 : centre + dx + 4]
        total = window.sum()
        offset = np.hypot((window * xx).sum() / total, (window * yy).sum() / total)
        assert offset < 0.2, (dx, dy)


def test_full_beam_fit_fits_the_psf_better_than_wscleans(images):
    """WSClean's fit sees one quadrant of the box; the full fit has the smaller squared error over the box."""
    from srcnet_sim.imaging.beam import FIT_BOX_BEAMS, fit_beam

    ours, _, _ = images
    cell = np.radians(CELL_ARCSEC / 3600)
    full = fit_beam(ours.psf, cell, ours.beam.major_rad, "full")
    box = int(np.ceil(FIT_BOX_BEAMS * ours.beam.major_rad / cell)) // 2 * 2
    half, c = box // 2, NPIX // 2
    cut = ours.psf[c - half : c + half, c - half : c + half]

    def error(beam):
        kernel = beam.kernel(cell, half)[:-1, :-1]
        return float(((kernel - cut) ** 2).sum())

    assert error(full) < error(ours.beam)


def test_residual_no_worse_than_wsclean(images):
    ours, ws, _ = images
    assert ours.clean.residual.std() <= 1.1 * ws["residual"].std()
