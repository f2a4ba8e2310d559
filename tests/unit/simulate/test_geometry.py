"""Geometry: UVW against casacore's own per-baseline computation, elevation against astropy."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from casacore.measures import measures
from casacore.quanta import quantity

from srcnet_sim.simulate import geometry
from srcnet_sim.instrument import load_telescope

RA0, DEC0 = np.radians(150.12), np.radians(2.21)


@pytest.fixture(scope="module")
def default_times():
    return geometry.sample_times_s(datetime(2020, 4, 26, 16, 36, tzinfo=timezone.utc), 4 * 3600.0, 24)


def test_sample_times_are_interval_centres(default_times):
    assert np.diff(default_times) == pytest.approx(np.full(23, 600.0))
    start_s = Time("2020-04-26T16:36", scale="utc").mjd * 86400.0
    assert default_times[0] - start_s == pytest.approx(300.0, abs=1e-3)


@pytest.mark.parametrize("start, length_s, n_samples", [
    ("2020-04-26T16:36:00", 4 * 3600.0, 24),
    ("2016-12-31T23:00:00", 7200.0, 720),  # across the leap second 2016-12-31T23:59:60
    ("2026-11-26T05:17:42.123456", 36000.0, 1440),
    ("1999-03-01T00:00:00.5", 86400.0 * 3, 7),
])
def test_sample_times_are_astropys(start: str, length_s: float, n_samples: int):
    """UTC MJD seconds as astropy's Time arithmetic gives them (elapsed seconds count a leap second), to 1 us."""
    first = Time(start, scale="utc")
    expected = (first + (np.arange(n_samples) + 0.5) * (length_s / n_samples) * u.s).utc.mjd * 86400.0
    ours = geometry.sample_times_s(datetime.fromisoformat(start).replace(tzinfo=timezone.utc), length_s, n_samples)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def test_longest_baseline_uvw_matches_casacore_to_1cm(default_times):
    """Per-dish UVW differenced per baseline equals casacore's to_uvw of the baseline itself."""
    tel = load_telescope("SKA-MID-AAstar")
    dist = np.linalg.norm(tel.itrf_m[:, None] - tel.itrf_m[None], axis=-1)
    a, b = np.unravel_index(np.argmax(dist), dist.shape)
    ours = geometry.dish_uvw(tel.itrf_m, default_times, RA0, DEC0)
    ours_bl = ours[:, a] - ours[:, b]
    dm = measures()
    dm.do_frame(dm.position("itrf", *(quantity(float(x), "m") for x in tel.itrf_m[b])))
    dm.do_frame(dm.direction("J2000", quantity(RA0, "rad"), quantity(DEC0, "rad")))
    baseline = tel.itrf_m[a] - tel.itrf_m[b]
    for i, t in enumerate(default_times):
        dm.do_frame(dm.epoch("utc", quantity(t, "s")))
        ref = dm.to_uvw(dm.baseline("itrf", *(quantity(float(x), "m") for x in baseline)))["xyz"].get_value("m")
        np.testing.assert_allclose(ours_bl[i], ref, atol=0.01, rtol=0)
    assert np.linalg.norm(ours_bl, axis=1).max() > 1e5  # it is the ~108 km baseline


def test_w_points_at_the_phase_centre(default_times):
    """|uvw| equals the baseline length, and w = b . s for the phase-centre direction to ~1e-4 (aberration)."""
    tel = load_telescope("SKA-MID-AA1")
    uvw = geometry.dish_uvw(tel.itrf_m, default_times[:1], RA0, DEC0)[0]
    rel = tel.itrf_m - tel.itrf_m.mean(0)
    np.testing.assert_allclose(np.linalg.norm(uvw, axis=1), np.linalg.norm(rel, axis=1), rtol=1e-9)


def test_elevation_matches_astropy(default_times):
    iers.conf.auto_download = False
    tel = load_telescope("SKA-MID-AAstar")
    ours = np.degrees(geometry.elevation_rad(tel.itrf_m.mean(0), default_times, RA0, DEC0))
    site = EarthLocation.from_geocentric(*tel.itrf_m.mean(0), unit=u.m)
    times = Time(default_times / 86400.0, format="mjd", scale="utc")
    altaz = SkyCoord(RA0 * u.rad, DEC0 * u.rad, frame="fk5", equinox="J2000").transform_to(AltAz(obstime=times, location=site))
    np.testing.assert_allclose(ours, altaz.alt.deg, atol=0.01)


def test_parallactic_angle_matches_astropys_position_angle_of_the_zenith():
    """Our parallactic angle (casacore) against astropy's: the position angle, in ICRS, of the geodetic zenith seen
    from the field, over 8 h of a field at Dec -30 deg that rises, transits 1 deg from the zenith and sets (the angle
    sweeps through 180 deg): within 0.01 deg away from the zenith, where it is ill-conditioned."""
    iers.conf.auto_download = False
    tel = load_telescope("SKA-MID-AAstar")
    dec = np.radians(-30.0)
    times = geometry.sample_times_s(datetime(2026, 3, 1, 16, 0, tzinfo=timezone.utc), 8 * 3600.0, 33)
    ours = geometry.parallactic_angle_rad(tel.itrf_m.mean(0), times, RA0, dec)
    site = EarthLocation.from_geocentric(*tel.itrf_m.mean(0), unit=u.m)
    obstime = Time(times / 86400.0, format="mjd", scale="utc")
    zenith = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=AltAz(obstime=obstime, location=site)).icrs
    theirs = SkyCoord(RA0 * u.rad, dec * u.rad).position_angle(zenith).rad
    elevation = np.degrees(geometry.elevation_rad(tel.itrf_m.mean(0), times, RA0, dec))
    difference = np.degrees(np.angle(np.exp(1j * (ours - theirs))))
    away = elevation < 85.0
    assert np.abs(difference[away]).max() < 0.01 and np.count_nonzero(away) > 25
    assert np.ptp(np.unwrap(ours)) > np.radians(150)  # the track turns the sky by most of a half turn


def test_direction_cosines():
    lmn = geometry.direction_cosines(np.array([RA0, RA0]), np.array([DEC0, DEC0 + 0.01]), RA0, DEC0)
    np.testing.assert_allclose(lmn[0], 0.0, atol=1e-15)
    np.testing.assert_allclose(lmn[1], [0.0, np.sin(0.01), np.cos(0.01) - 1.0], atol=1e-15)
