"""BEAM=everybeam (instrument.beams): the SKA dish pattern against EveryBeam's own evaluation, the MeerKAT pattern
against katbeam's, a source on a null, and an off-axis source's flux in a WSClean image against the truth."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from casacore.tables import table

from conftest import run_cli, sin_pixel_position, unpack_ms, write_csv_sky
from srcnet_sim.instrument.beams import (KATBEAM_BAND_HZ, KATBEAM_MODEL, airy_voltage_beam, check_library_beams,
                                         katbeam_voltage_beam)

RA0, DEC0 = 150.12, 2.21
C = 299_792_458.0
RNG = np.random.default_rng(2026)

# EveryBeam in its own process: its wheel carries its own casacore, kept apart from python-casacore's.
EVERYBEAM_PROBE = """
import sys, numpy as np, everybeam
ms, points, out = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
telescope = everybeam.load_telescope(ms, element_response_model="skamid_analytical")
assert type(telescope).__name__ == "SkaMid", type(telescope)
np.save(out, np.array([telescope.station_response(t, int(s), f, ra, dec) for t, s, f, ra, dec in points]))
"""


def _ska_mid_ms(tmp_path: Path) -> Path:
    """A small MS of ours (AA0.5, 4 SKA dishes) that EveryBeam reads as SKA-Mid (TELESCOPE_NAME 'MID')."""
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA0.5",
                                            "NUM_TIME_STAMPS": "2", "SYNTHETIC_SOURCES": "1"})
    assert result.returncode == 0, result.stderr
    ms = unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "ms")
    with table(str(ms / "OBSERVATION"), readonly=False, ack=False) as observation:
        observation.putcol("TELESCOPE_NAME", np.array(["MID"] * observation.nrows()))
    return ms


def test_ska_dish_pattern_is_everybeams_at_a_thousand_random_points(tmp_path: Path):
    """Our E(theta, nu) against EveryBeam's SkaMid station response at 1,000 random (l, m, nu, t) out to 3 deg (the main
    lobe and four sidelobes at 1.4 GHz), SKA-Mid band 2 (0.95-1.76 GHz): equal to 1e-4 of the peak (EveryBeam computes
    in float32), diagonal, the same for X and Y."""
    ms = _ska_mid_ms(tmp_path)
    with table(str(ms), ack=False) as main:
        times = np.unique(main.getcol("TIME"))
    with table(str(ms / "FIELD"), ack=False) as field:
        ra_p, dec_p = field.getcol("DELAY_DIR")[0, 0]
    n = 1000
    offset = np.radians(3.0) * np.sqrt(RNG.uniform(size=n))  # uniform over the disc
    angle = RNG.uniform(0, 2 * np.pi, n)
    freq = RNG.uniform(0.95e9, 1.76e9, n)
    when = RNG.uniform(times[0], times[-1], n)
    station = RNG.integers(0, 4, n)
    where = SkyCoord(ra_p * u.rad, dec_p * u.rad).directional_offset_by(angle * u.rad, offset * u.rad)
    points = np.stack([when, station, freq, where.ra.rad, where.dec.rad], axis=1)
    np.save(tmp_path / "points.npy", points)
    probe = subprocess.run([sys.executable, "-c", EVERYBEAM_PROBE, str(ms), str(tmp_path / "points.npy"),
                            str(tmp_path / "jones.npy")], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    jones = np.load(tmp_path / "jones.npy")  # (n, 2, 2) complex64
    ours = np.array([airy_voltage_beam(np.array([o]), np.array([f]), 15.0)[0, 0] for o, f in zip(offset, freq)])
    for xx in (jones[:, 0, 0], jones[:, 1, 1]):
        np.testing.assert_allclose(xx.real, ours, rtol=0, atol=1e-4)
        assert np.abs(xx.imag).max() == 0.0
    assert np.abs(jones[:, 0, 1]).max() == 0.0 and np.abs(jones[:, 1, 0]).max() == 0.0
    assert ours.min() < -0.1 and np.sum(ours < 0) > 100  # the draw reaches the sidelobes, where E changes sign
    print(f"max |ours - EveryBeam| = {np.abs(jones[:, 0, 0].real - ours).max():.2e} over {n} points")


def test_meerkat_pattern_is_katbeams_mean_over_parallactic_angle_and_polarisation():
    """Our E(theta, nu) against katbeam's JimBeam (HH + VV) / 2 averaged over 720 azimuths, 300 random (theta, nu)
    within 3 deg and 900-1650 MHz: equal to 1e-5 of the peak (its radial grid and 64 azimuths). Beside it, what the
    scalar model leaves out: HH or VV at one parallactic angle differs from the mean by 3.1 % of the peak at most within
    the half-power radius (the ellipticity and squint of katbeam's fit)."""
    from katbeam import JimBeam

    model = JimBeam(KATBEAM_MODEL)
    n = 300
    offset_deg = 3.0 * RNG.uniform(size=n)
    freq = RNG.uniform(*KATBEAM_BAND_HZ, n)
    phi = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    worst_scalar = 0.0
    for theta, f in zip(offset_deg, freq):
        x, y = theta * np.cos(phi), theta * np.sin(phi)
        hh, vv = model.HH(x, y, f / 1e6), model.VV(x, y, f / 1e6)
        reference = 0.5 * (hh + vv).mean()
        ours = katbeam_voltage_beam(np.radians([theta]), np.array([f]))[0, 0]
        assert ours == pytest.approx(reference, abs=1e-5)
        if theta < 0.5 * model.fwhmlist[0][np.argmin(np.abs(model.freqMHzlist - f / 1e6))]:
            worst_scalar = max(worst_scalar, np.abs(hh - ours).max(), np.abs(vv - ours).max())
    print(f"scalar mean vs HH/VV within the half-power radius: max difference {worst_scalar:.4f} of the peak")
    assert 0.01 < worst_scalar < 0.05


def test_arrays_and_bands_the_libraries_do_not_model_are_refused():
    assert check_library_beams(np.array([15.0, 13.5]), np.array([1.3e9])) is None
    assert check_library_beams(np.array([15.0]), np.array([0.5e9, 1.8e9])) is None  # EveryBeam's model has no band edge
    assert "the channels span 1800-1800 MHz" in check_library_beams(np.array([13.5]), np.array([1.8e9]))
    assert "12 m" in check_library_beams(np.array([15.0, 12.0]), np.array([1.3e9]))


def test_out_of_band_everybeam_run_is_one_line_naming_beam(tmp_path: Path):
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(tmp_path), "BEAM": "everybeam", "START_FREQ_HZ": "1.7e9",
                                            "END_FREQ_HZ": "1.75e9", "FREQ_INC_HZ": "1e7"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("srcnet-sim: error: BEAM: everybeam: katbeam's MeerKAT L-band model covers 900-1650 MHz")
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_a_source_on_the_first_null_is_suppressed(tmp_path: Path):
    """AA1 (SKA dishes), one channel: a 1 Jy source on the first null of E (x = 3.8317, 1.07 deg at 1.3 GHz) leaves
    visibilities below 1e-5 Jy; the same source on axis gives 1 Jy."""
    freq = 1.3e9
    null_sin = 3.8317059702 * C / (np.pi * 15.0 * freq)  # sin(theta) of the first zero of J1
    cell = null_sin / 1000  # the source at m = sin(theta), l = 0
    peaks = {}
    for name, dy in (("null", 1000), ("axis", 0)):
        out = tmp_path / name
        out.mkdir()
        write_csv_sky(out / "sky.csv", [(*sin_pixel_position(0, dy, cell), 1.0)])
        result = run_cli(["run", "--vis"], env={
            "OUT_DIR": str(out), "TELESCOPE": "SKA-MID-AA1", "BEAM": "everybeam", "SKY_MODEL": str(out / "sky.csv"),
            "SKY_FILTER_FWHM": "5", "START_FREQ_HZ": str(freq), "END_FREQ_HZ": str(freq + 1e5), "FREQ_INC_HZ": "1e5",
            "NUM_TIME_STAMPS": "4", "SMEARING": "off"})
        assert result.returncode == 0, result.stderr
        with table(str(unpack_ms(out / "testing" / "measurements.ms.tar", out / "ms")), ack=False) as main:
            peaks[name] = np.abs(main.getcol("DATA")[:, :, [0, 3]]).max()
    assert peaks["axis"] == pytest.approx(1.0, abs=1e-5)
    assert peaks["null"] < 1e-5, peaks


def test_an_off_axis_sources_flux_in_a_wsclean_image_is_the_truths_pb_weighted_flux(tmp_path: Path):
    """AA1 with BEAM=everybeam, one 1 Jy source 0.35 deg off axis on a pixel centre: WSClean's naturally weighted dirty
    image reads the truth's mean S_APP (= PB_GAIN here, E^2 of the SKA dish) over the four channels, to 3e-4."""
    assert shutil.which("wsclean"), "WSClean must be installed (Debian package wsclean): the README's test command does it"
    cell = np.radians(8.0 / 3600)
    dy = 157  # 0.349 deg: E^2 = 0.63-0.68 across the band
    write_csv_sky(tmp_path / "sky.csv", [(*sin_pixel_position(0, dy, cell), 1.0)])
    env = {"OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA1", "BEAM": "everybeam", "SKY_MODEL": str(tmp_path / "sky.csv"),
           "NUM_TIME_STAMPS": "24", "SMEARING": "off"}
    result = run_cli(["run", "--vis", "--truth"], env=env)
    assert result.returncode == 0, result.stderr
    truth = fits.getdata(tmp_path / "testing" / "truth.fits", 1)
    header = fits.getheader(tmp_path / "testing" / "truth.fits", 1)
    assert header["PBMODEL"] == "everybeam" and header["PBSKA"] == "EveryBeam skamid_analytical"
    assert header["PBSKAD"] == 15.0 and "MKAT-AA-L-JIM-2020" in header["PBMKAT"]
    expected = float(np.mean(truth["S_APP"][0]))
    offset = dy * cell  # m = sin(theta)
    freq = 1.304e9 + np.arange(4) * 17.75e6
    np.testing.assert_allclose(truth["PB_GAIN"][0], airy_voltage_beam(np.array([np.arcsin(offset)]), freq, 15.0)[:, 0] ** 2,
                               rtol=1e-9)
    ms = unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "ms")
    subprocess.run(["wsclean", "-quiet", "-use-wgridder", "-size", "512", "512", "-scale", "8asec", "-weight", "natural", "-pol", "I",
                    "-name", str(tmp_path / "ws"), str(ms)], check=True, capture_output=True, timeout=600)
    image = fits.getdata(tmp_path / "ws-dirty.fits")[0, 0]
    measured = float(image[256 + dy, 256])
    print(f"WSClean dirty at the source {measured:.5f} Jy/beam, truth mean S_APP {expected:.5f} Jy")
    assert 0.6 < expected < 0.7
    assert measured == pytest.approx(expected, rel=3e-4)
