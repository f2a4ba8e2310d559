"""Apparent flux: what the array saw of each source once the primary beams are applied.

The visibility of baseline (p, q) sees a source through E_p(s) E_q(s), the product of the two dishes'
voltage beams. When dishes differ (MeerKAT 13.5 m and SKA 15 m in AA*), different baselines see
different gains; the catalogue's single gain per source and channel is the mean of E_p E_q over the
baselines actually written, each baseline counting once (autocorrelations included when written).
That is the gain a naturally weighted image of equal-weight baselines measures; other imaging weights
shift it by less than the spread between E_MeerKAT^2 and E_SKA^2 (zero at the phase centre).

When beams differ between H and V and turn with the parallactic angle (BEAM=everybeam's MeerKAT dishes), a Stokes I
image is (XX + YY) / 2: the gain is the mean of (E_H,p E_H,q + E_V,p E_V,q) / 2 over the baselines and over the
time steps (at most PARALLACTIC_SAMPLES of them, evenly spread over the track; each time step weighs the same, as in
the image).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from srcnet_sim.instrument.beams import dish_beams, dish_types, polarised_beams
from srcnet_sim.simulate import geometry

if TYPE_CHECKING:
    from srcnet_sim.simulate.observation import Observation

PARALLACTIC_SAMPLES = 48  # time steps whose beams are averaged for the truth's gain (all of them in shorter runs)


def baseline_mean_gain(beams: np.ndarray, dish_type: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray:
    """(n_chan, n_src) mean over baselines of E_p E_q.

    Args:
        beams: (n_type, n_chan, n_src) voltage beam of each dish type.
        dish_type: (n_dish,) type index of each dish.
        ant1, ant2: (n_baseline,) dish indices of the baselines written.
    """
    n_type = beams.shape[0]
    counts = np.zeros((n_type, n_type))
    np.add.at(counts, (dish_type[ant1], dish_type[ant2]), 1.0)
    return np.einsum("ab,aks,bks->ks", counts, beams, beams) / counts.sum()


def apparent_gain(obs: "Observation") -> np.ndarray:
    """(n_chan, n_src) primary-beam gain of each source of `obs.sky` (an Observation), in the sky's order."""
    offset = obs.sky.angular_distance_rad(obs.ra_rad, obs.dec_rad)
    ant1, ant2 = obs.baselines
    if obs.rotating_beams:
        return _time_mean_polarised_gain(obs, offset, ant1, ant2)
    beams, dish_type = dish_beams(obs.beam, offset, obs.freq_hz, obs.telescope.diameters_m)
    return baseline_mean_gain(beams, dish_type, ant1, ant2)


def _time_mean_polarised_gain(obs: "Observation", offset_rad: np.ndarray, ant1: np.ndarray,
                              ant2: np.ndarray) -> np.ndarray:
    """(n_chan, n_src) mean over baselines and time steps of (E_H,p E_H,q + E_V,p E_V,q) / 2."""
    _, dish_type = dish_types(obs.beam, obs.telescope.diameters_m)
    lmn = geometry.direction_cosines(obs.sky.ra_rad, obs.sky.dec_rad, obs.ra_rad, obs.dec_rad)
    beams = polarised_beams(obs.beam, lmn, offset_rad, obs.freq_hz, obs.telescope.diameters_m)
    steps = np.unique(np.linspace(0, len(obs.times_s) - 1, min(len(obs.times_s), PARALLACTIC_SAMPLES)).round()).astype(int)
    angles = (obs.parallactic_rad if obs.parallactic_rad is not None else obs.parallactic_angles())[steps]
    gain = np.zeros((len(obs.freq_hz), len(offset_rad)))
    for angle in angles:
        hv = beams.at(float(angle))  # (n_type, 2, n_chan, n_src)
        gain += 0.5 * (baseline_mean_gain(hv[:, 0], dish_type, ant1, ant2) + baseline_mean_gain(hv[:, 1], dish_type, ant1, ant2))
    return gain / len(steps)
