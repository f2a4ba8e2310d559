"""BEAM=everybeam (instrument.beams): the SKA dish pattern against EveryBeam's own evaluation, the MeerKAT H and V
patterns against katbeam's and turning with the parallactic angle (astropy's) in an AA* MS, a source on a null, and an
off-axis source's flux in a WSClean image against the truth."""

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
                                         dish_frame_offsets_deg, katbeam_polarised_beams)

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


def test_meerkat_h_and_v_patterns_are_katbeams_at_a_thousand_random_points():
    """Our H and V patterns (all channels at once) against katbeam's own JimBeam.HH / VV at 1,000 random (x, y, nu)
    within 3 deg (half of them within 0.6 deg) and 900-1650 MHz: equal to 1e-12. Beside it, what a scalar model would leave out: H and V differ by
    up to a few per cent of the peak within the half-power radius (katbeam's ellipticity and squint)."""
    from katbeam import JimBeam

    model = JimBeam(KATBEAM_MODEL)
    n = 1000
    extent = np.where(np.arange(n) % 2 == 0, 3.0, 0.6)  # half of them in the main lobe
    x, y = RNG.uniform(-1, 1, n) * extent, RNG.uniform(-1, 1, n) * extent
    freq = RNG.uniform(*KATBEAM_BAND_HZ, n)
    worst_difference = 0.0
    for chunk in np.array_split(np.arange(n), 10):
        ours = katbeam_polarised_beams(x[chunk], y[chunk], freq[chunk])  # (2, n_chan, n_src): every (nu, source)
        for j, i in enumerate(chunk):
            hh, vv = model.HH(x[i], y[i], freq[i] / 1e6), model.VV(x[i], y[i], freq[i] / 1e6)
            assert ours[0, j, j] == pytest.approx(hh, abs=1e-12) and ours[1, j, j] == pytest.approx(vv, abs=1e-12)
            if np.hypot(x[i], y[i]) < 0.5 * model.fwhmlist[0][np.argmin(np.abs(model.freqMHzlist - freq[i] / 1e6))]:
                worst_difference = max(worst_difference, abs(hh - vv))
    print(f"H - V within the half-power radius: max {worst_difference:.4f} of the peak")
    assert 0.01 < worst_difference < 0.1


def test_the_dish_frame_turns_with_the_parallactic_angle():
    """A source towards the zenith (position angle = the parallactic angle chi) lies on the dish's elevation axis
    (x = 0, y = r); one at chi - 90 deg on its azimuth axis (x = r, y = 0): at chi = 0 (a source due south, the zenith
    north of it on the sky) that is west, the way the azimuth grows."""
    r = np.radians(0.4)
    for chi in RNG.uniform(-np.pi, np.pi, 20):
        for theta, expected in ((chi, (0.0, 0.4)), (chi - np.pi / 2, (0.4, 0.0))):
            x, y = dish_frame_offsets_deg(np.array([r * np.sin(theta)]), np.array([r * np.cos(theta)]), chi)
            assert (x[0], y[0]) == pytest.approx(expected, abs=1e-12)
    x, y = dish_frame_offsets_deg(np.array([-r]), np.array([0.0]), 0.0)  # west of the centre at chi = 0
    assert (x[0], y[0]) == pytest.approx((0.4, 0.0), abs=1e-12)


def test_aastar_visibilities_carry_katbeams_turning_h_and_v_patterns(tmp_path: Path):
    """AA* (64 MeerKAT and 80 SKA dishes), BEAM=everybeam, one 1 Jy source 0.5 deg off axis, 12 time steps over
    8 h: on every MeerKAT-MeerKAT baseline |XX| = E_H^2 and |YY| = E_V^2, with katbeam evaluated at the source's
    offset turned by the parallactic angle that astropy gives for each time (an independent computation), and they
    change over the track; on SKA-SKA baselines XX = YY = EveryBeam's E^2, constant. The truth's PB_GAIN is the mean
    of (|XX| + |YY|) / 2 over the baselines and times of the MS."""
    from astropy.coordinates import AltAz, EarthLocation
    from astropy.time import Time
    from katbeam import JimBeam

    ra0, dec0 = 150.12, -30.0
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    source = centre.directional_offset_by(35 * u.deg, 0.5 * u.deg)
    write_csv_sky(tmp_path / "sky.csv", [(source.ra.deg, source.dec.deg, 1.0)])
    freq = 1.3e9
    result = run_cli(["run", "--vis", "--truth"], env={
        "OUT_DIR": str(tmp_path), "BEAM": "everybeam", "SKY_MODEL": str(tmp_path / "sky.csv"), "SKY_FILTER_FWHM": "5",
        "PHASE_CENTER_RA_DEG": str(ra0), "PHASE_CENTER_DEC_DEG": str(dec0), "START_DATE_AND_TIME": "2026-03-01T16:00",
        "OBS_LENGTH_HOURS": "8", "NUM_TIME_STAMPS": "12", "START_FREQ_HZ": str(freq), "END_FREQ_HZ": str(freq + 1e5),
        "FREQ_INC_HZ": "1e5", "SMEARING": "off"})
    assert result.returncode == 0, result.stderr
    ms = unpack_ms(tmp_path / "testing" / "measurements.ms.tar", tmp_path / "ms")
    with table(str(ms), ack=False) as main:
        data, a1, a2, time = (main.getcol(c) for c in ("DATA", "ANTENNA1", "ANTENNA2", "TIME"))
    with table(str(ms / "ANTENNA"), ack=False) as antenna:
        diameter, position = antenna.getcol("DISH_DIAMETER"), antenna.getcol("POSITION")
    meerkat = (diameter[a1] == 13.5) & (diameter[a2] == 13.5)
    ska = (diameter[a1] == 15.0) & (diameter[a2] == 15.0)
    times = np.unique(time)
    location = EarthLocation.from_geocentric(*position.mean(axis=0), unit=u.m)
    zenith = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=AltAz(obstime=Time(times / 86400, format="mjd"),
                                                                  location=location)).icrs
    chi = centre.position_angle(zenith).rad
    l_m = np.array([np.cos(source.dec.rad) * np.sin(source.ra.rad - centre.ra.rad),
                    np.sin(source.dec.rad) * np.cos(centre.dec.rad)
                    - np.cos(source.dec.rad) * np.sin(centre.dec.rad) * np.cos(source.ra.rad - centre.ra.rad)])
    model = JimBeam(KATBEAM_MODEL)
    seen = []
    for t, angle in zip(times, chi, strict=True):
        x = np.degrees(l_m[1] * np.sin(angle) - l_m[0] * np.cos(angle))
        y = np.degrees(l_m[0] * np.sin(angle) + l_m[1] * np.cos(angle))
        rows = time == t
        h2, v2 = model.HH(x, y, freq / 1e6) ** 2, model.VV(x, y, freq / 1e6) ** 2
        np.testing.assert_allclose(np.abs(data[rows & meerkat, 0, 0]), h2, rtol=2e-4)
        np.testing.assert_allclose(np.abs(data[rows & meerkat, 0, 3]), v2, rtol=2e-4)
        seen.append((h2, v2))
    seen = np.array(seen)
    assert np.ptp(seen[:, 0]) > 0.01 and np.ptp(seen[:, 1]) > 0.01  # the pattern turns under the source
    ska_e2 = airy_voltage_beam(np.array([np.radians(0.5)]), np.array([freq]), 15.0)[0, 0] ** 2
    np.testing.assert_allclose(np.abs(data[ska][:, 0, [0, 3]]), ska_e2, rtol=2e-5)
    truth = fits.getdata(tmp_path / "testing" / "truth.fits", 1)
    mean_gain = 0.5 * (np.abs(data[:, 0, 0]) + np.abs(data[:, 0, 3])).mean()
    assert fits.getheader(tmp_path / "testing" / "truth.fits", 1)["PBRULE"].startswith("mean of (EHp*EHq+EVp*EVq)/2")
    pb_gain = float(np.ravel(truth["PB_GAIN"][0])[0])
    assert pb_gain == pytest.approx(mean_gain, rel=1e-5)
    print(f"MeerKAT E_H^2 over the track {seen[:, 0].min():.4f}-{seen[:, 0].max():.4f}, E_V^2 "
          f"{seen[:, 1].min():.4f}-{seen[:, 1].max():.4f}; SKA {ska_e2:.4f}; PB_GAIN {pb_gain:.5f}")


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
