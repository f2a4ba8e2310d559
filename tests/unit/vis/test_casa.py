"""CASA (casatools/casatasks 6.7 from PyPI) reads our MeasurementSet as an astronomer's first commands would.

CASA runs offline, each task in its own Python process (tests/casa_offline.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import EarthLocation
from astropy.io import fits
from casacore.tables import table

from casa_offline import casa_home, run_casa  # noqa: F401 (casa_home is a fixture)
from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.imaging.imager import ImagingParameters, make_images
from srcnet_sim.imaging.msdata import MeasurementSetSource
from srcnet_sim.vis.observatory import ms_telescope_name
from srcnet_sim.instrument import Site, load_telescope

NPIX = 512
CELL_ARCSEC = 1.9  # the seed's cell (FOV / 2024 pixels at 1.34 GHz): the longest AA2 baselines fall off the grid
RA0, DEC0 = 150.12, 2.21
# (RA offset arcsec, Dec offset arcsec, flux Jy): one bright source near the centre, two far out where w matters.
SOURCES = [(30.0, 0.0, 1.0), (-300.0, 250.0, 0.5), (200.0, -380.0, 0.3)]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """AA2 (64 dishes, baselines to 108 km), 6 time steps over 4 h, 4 channels, three point sources."""
    out = tmp_path_factory.mktemp("casa_ms")
    cos_dec = np.cos(np.radians(DEC0))
    sky = write_csv_sky(out / "sky.csv", [(RA0 + dra / 3600 / cos_dec, DEC0 + ddec / 3600, flux)
                                         for dra, ddec, flux in SOURCES])
    env = {"OUT_DIR": str(out), "SKY_MODEL": str(sky), "TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "6",
           "OBS_LENGTH_HOURS": "4", "FILE_PREFIX": "c_", "RUCIO_NAMESPACE": "sim"}
    result = run_cli(["run", "--vis"], env=env)
    assert result.returncode == 0, result.stderr
    return unpack_ms(out / "sim" / "c_measurements.ms.tar", out / "unpacked"), out


def test_listobs_reports_what_we_wrote(casa_home: Path, small_run):
    ms, work = small_run
    listing = work / "listobs.txt"
    casa = run_casa(casa_home, f"""
        import json
        from casatasks import listobs
        from casatools import msmetadata
        summary = listobs(vis={str(ms)!r}, listfile={str(listing)!r}, overwrite=True)
        md = msmetadata()
        md.open({str(ms)!r})
        position = md.observatoryposition(0)
        out = {{"begin_mjd": summary["BeginTime"], "end_mjd": summary["EndTime"], "n_rows": summary["numrecords"],
               "field": md.fieldnames()[0], "ra_rad": summary["field_0"]["direction"]["m0"]["value"],
               "dec_rad": summary["field_0"]["direction"]["m1"]["value"], "antennas": md.antennanames(),
               "chan_freq_hz": md.chanfreqs(0).tolist(), "observatory": md.observatorynames()[0],
               "observatory_lon_lat_rad": [position["m0"]["value"], position["m1"]["value"]]}}
        md.close()
        print(json.dumps(out))
        """, cwd=work)
    with table(f"{ms}/FIELD", ack=False) as field:
        name, (ra, dec) = field.getcell("NAME", 0), field.getcell("PHASE_DIR", 0)[0]
    with table(f"{ms}/SPECTRAL_WINDOW", ack=False) as spw:
        freq_hz = spw.getcell("CHAN_FREQ", 0)
    with table(str(ms), ack=False) as main:
        n_rows = main.nrows()
        times, intervals = main.getcol("TIME"), main.getcol("INTERVAL")
    tel = load_telescope("SKA-MID-AA2")
    assert casa["antennas"] == list(tel.station_names)
    np.testing.assert_allclose(casa["chan_freq_hz"], 1.304e9 + 1.775e7 * np.arange(4))
    np.testing.assert_allclose(casa["chan_freq_hz"], freq_hz)
    assert casa["n_rows"] == n_rows == 6 * tel.n_baselines
    assert casa["begin_mjd"] * 86400 == pytest.approx((times - intervals / 2).min(), abs=1e-3)
    assert casa["end_mjd"] * 86400 == pytest.approx((times + intervals / 2).max(), abs=1e-3)
    assert casa["begin_mjd"] == pytest.approx(58965.691666667, abs=1e-8)  # 2020-04-26T16:36 UTC
    assert casa["field"] == name
    assert (casa["ra_rad"], casa["dec_rad"]) == pytest.approx((ra, dec), abs=1e-12)
    # CASA's position for the observatory is the SKA-Mid site (within 100 m).
    lon, lat = np.degrees(casa["observatory_lon_lat_rad"])
    assert casa["observatory"] == "MeerKAT"
    casa_site = EarthLocation.from_geodetic(lon, lat, tel.site.height_m)
    assert np.linalg.norm([c.to_value("m") for c in casa_site.to_geocentric()] - tel.site.itrf_m()) < 100
    text = listing.read_text()
    assert "Antennas: 64" in text and "Observation: MeerKAT" in text
    assert "26-Apr-2020/16:36:00.0   to   26-Apr-2020/20:36:00.0 (UTC)" in text
    assert "    4   TOPO    1304.000     17750.000" in text
    # The array's own name stays in the MS for readers that want it, and in the ObsCore sidecar.
    with table(f"{ms}/OBSERVATION", ack=False) as obs:
        assert obs.getcell("ARRAY_NAME", 0) == "SKA-Mid AA2"
    sidecar = json.loads((work / "sim" / "c_measurements.ms.tar.meta").read_text())
    assert sidecar["meta"]["instrument_name"] == "SKA-Mid AA2"


def test_only_an_array_at_a_casa_observatory_takes_its_name():
    ska_mid = load_telescope("SKA-MID-AA0.5")
    assert ms_telescope_name(ska_mid.name, ska_mid.site) == "MeerKAT"
    elsewhere = Site(21.4439 + 0.2, -30.7132, 1000.0)  # about 19 km east of MeerKAT
    assert ms_telescope_name("my-array", elsewhere) == "my-array"


def test_fixvis_recomputes_our_uvw(casa_home: Path, small_run):
    ms, work = small_run
    fixed = work / "fixvis.ms"
    run_casa(casa_home, f"""
        from casatasks import fixvis
        fixvis(vis={str(ms)!r}, outputvis={str(fixed)!r}, reuse=False)
        print("{{}}")
        """, cwd=work)
    with table(str(ms), ack=False) as ours, table(str(fixed), ack=False) as casa:
        uvw_ours, uvw_casa = ours.getcol("UVW"), casa.getcol("UVW")
    assert np.abs(uvw_ours).max() > 50e3  # baselines of tens of km: a millimetre is a few parts in 1e8
    assert np.abs(uvw_casa - uvw_ours).max() <= 1e-3


def test_tclean_dirty_image_agrees_with_ours(casa_home: Path, small_run):
    """tclean with w-projection and natural weighting, at the seed's cell, where long baselines fall off the grid."""
    ms, work = small_run
    image = work / "tclean"
    run_casa(casa_home, f"""
        from casatasks import exportfits, tclean
        tclean(vis={str(ms)!r}, imagename={str(image)!r}, specmode="mfs", gridder="widefield", wprojplanes=-1,
               weighting="natural", imsize=[{NPIX}, {NPIX}], cell="{CELL_ARCSEC}arcsec", stokes="I", niter=0, pbcor=False)
        exportfits(imagename={str(image)!r} + ".image", fitsimage={str(image)!r} + ".fits")
        print("{{}}")
        """, cwd=work)
    casa = np.squeeze(fits.getdata(f"{image}.fits"))
    ours = make_images(MeasurementSetSource(ms), ImagingParameters(NPIX, np.radians(CELL_ARCSEC / 3600), "natural",
                                                                    allow_uv_cut=True), None)
    assert ours.sampled_weight_fraction < 0.9  # the cut is real
    assert np.corrcoef(ours.dirty.ravel(), casa.ravel())[0, 1] >= 0.99
    assert np.unravel_index(ours.dirty.argmax(), casa.shape) == np.unravel_index(casa.argmax(), casa.shape)
    assert ours.dirty.max() == pytest.approx(casa.max(), rel=0.01)
