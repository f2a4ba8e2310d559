"""Observation geometry: sample times, per-dish UVW in the J2000 frame, elevation, direction cosines.

UVW and elevation come from casacore's measures (the most recent IERS and leap-second tables installed, see
simulate.measures_data; nothing is downloaded), so they are CASA's own definition: casacore converts
a baseline from ITRF to J2000 through the apparent frame, including annual and diurnal
aberration. Per-dish UVW are computed once per time step and differenced per baseline:
UVW = position(ANTENNA1) - position(ANTENNA2), as CASA writes it.
"""

from __future__ import annotations

import warnings
from datetime import datetime

import erfa
import numpy as np
from casacore.measures import measures
from casacore.quanta import quantity

from srcnet_sim.constants import SECONDS_PER_DAY
from srcnet_sim.simulate import measures_data


def sample_times_s(start: datetime, length_s: float, n_samples: int) -> np.ndarray:
    """(n_samples,) centres of equal sample intervals covering [start, start + length_s], as UTC MJD seconds (the MS
    TIME column).

    `start` is a UTC datetime. Elapsed time counts leap seconds: UTC -> TAI, add, TAI -> UTC with erfa, as
    astropy's Time arithmetic does it.
    """
    interval_s = length_s / n_samples
    with warnings.catch_warnings():  # "dubious year" past erfa's leap seconds: measures_data.coverage_notice says it
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        tai = erfa.utctai(*erfa.dtf2d("UTC", start.year, start.month, start.day, start.hour, start.minute,
                                      start.second + start.microsecond / 1e6))
        utc = erfa.taiutc(tai[0], tai[1] + (np.arange(n_samples) + 0.5) * (interval_s / SECONDS_PER_DAY))
    return ((utc[0] - erfa.DJM0) + utc[1]) * SECONDS_PER_DAY


def _frame(itrf_ref_m: np.ndarray, ra_rad: float, dec_rad: float) -> measures:
    measures_data.current()  # the tables chosen before casacore first reads them
    dm = measures()
    dm.do_frame(dm.position("itrf", *(quantity(float(x), "m") for x in itrf_ref_m)))
    dm.do_frame(dm.direction("J2000", quantity(ra_rad, "rad"), quantity(dec_rad, "rad")))
    return dm


def dish_uvw(itrf_m: np.ndarray, mjd_utc_s: np.ndarray, ra_rad: float, dec_rad: float) -> np.ndarray:
    """(n_time, n_dish, 3) UVW of each dish relative to the array centroid, metres.

    Args:
        itrf_m: (n_dish, 3) ITRF positions, metres.
        mjd_utc_s: (n_time,) UTC sample times as MJD seconds (the MS TIME column).
        ra_rad, dec_rad: J2000 phase centre, radians.

    Baseline UVW (CASA convention) is dish_uvw[:, ant1] - dish_uvw[:, ant2].
    """
    centroid = itrf_m.mean(axis=0)
    relative = itrf_m - centroid
    dm = _frame(centroid, ra_rad, dec_rad)
    offsets = dm.baseline(
        "itrf", *(quantity(relative[:, axis].tolist(), "m") for axis in range(3))
    )
    out = np.empty((len(mjd_utc_s), len(itrf_m), 3))
    for i, time_s in enumerate(np.asarray(mjd_utc_s, dtype=np.float64)):
        dm.do_frame(dm.epoch("utc", quantity(time_s, "s")))
        xyz = dm.to_uvw(offsets)["xyz"].get_value("m")
        out[i] = np.asarray(xyz).reshape(-1, 3)
    return out


def elevation_rad(itrf_ref_m: np.ndarray, mjd_utc_s: np.ndarray, ra_rad: float, dec_rad: float) -> np.ndarray:
    """(n_time,) elevation of the J2000 direction above the geodetic horizon of an ITRF position, radians.

    casacore's AZELGEO (geodetic zenith); its AZEL is relative to the geocentric zenith, ~0.2 deg off here.
    """
    dm = _frame(itrf_ref_m, ra_rad, dec_rad)
    direction = dm.direction("J2000", quantity(ra_rad, "rad"), quantity(dec_rad, "rad"))
    out = np.empty(len(mjd_utc_s))
    for i, time_s in enumerate(np.asarray(mjd_utc_s, dtype=np.float64)):
        dm.do_frame(dm.epoch("utc", quantity(time_s, "s")))
        out[i] = dm.measure(direction, "AZELGEO")["m1"]["value"]
    return out


def parallactic_angle_rad(itrf_ref_m: np.ndarray, mjd_utc_s: np.ndarray, ra_rad: float, dec_rad: float) -> np.ndarray:
    """(n_time,) parallactic angle of the J2000 direction seen from an ITRF position, radians: the position angle
    (north through east, in the J2000 frame) of the geodetic zenith as seen from the direction, as casacore's
    measures give it (what CASA calls the parallactic angle of a field)."""
    dm = _frame(itrf_ref_m, ra_rad, dec_rad)
    direction = dm.direction("J2000", quantity(ra_rad, "rad"), quantity(dec_rad, "rad"))
    zenith = dm.direction("AZELGEO", quantity(0.0, "rad"), quantity(0.5 * np.pi, "rad"))
    out = np.empty(len(mjd_utc_s))
    for i, time_s in enumerate(np.asarray(mjd_utc_s, dtype=np.float64)):
        dm.do_frame(dm.epoch("utc", quantity(time_s, "s")))
        out[i] = dm.posangle(direction, dm.measure(zenith, "J2000")).get_value("rad")
    return out


def direction_cosines(ra_rad: np.ndarray, dec_rad: np.ndarray, ra0_rad: float, dec0_rad: float) -> np.ndarray:
    """(n_src, 3) direction cosines (l, m, n - 1) of sources relative to the phase centre (SIN)."""
    d_ra = ra_rad - ra0_rad
    cos_dec = np.cos(dec_rad)
    l = cos_dec * np.sin(d_ra)
    m = np.sin(dec_rad) * np.cos(dec0_rad) - cos_dec * np.sin(dec0_rad) * np.cos(d_ra)
    n = np.sin(dec_rad) * np.sin(dec0_rad) + cos_dec * np.cos(dec0_rad) * np.cos(d_ra)
    # n - 1 without cancellation for sources near the phase centre.
    n_minus_one = -(l**2 + m**2) / (1.0 + n)
    return np.stack([l, m, n_minus_one], axis=-1)
