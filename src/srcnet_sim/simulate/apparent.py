"""Apparent flux: what the array saw of each source once the primary beams are applied.

The visibility of baseline (p, q) sees a source through E_p(s) E_q(s), the product of the two dishes'
voltage beams. When dishes differ (MeerKAT 13.5 m and SKA 15 m in AA*), different baselines see
different gains; the catalogue's single gain per source and channel is the mean of E_p E_q over the
baselines actually written, each baseline counting once (autocorrelations included when written).
That is the gain a naturally weighted image of equal-weight baselines measures; other imaging weights
shift it by less than the spread between E_MeerKAT^2 and E_SKA^2 (zero at the phase centre).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from srcnet_sim.instrument.beams import dish_beams

if TYPE_CHECKING:
    from srcnet_sim.simulate.observation import Observation


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
    beams, dish_type = dish_beams(obs.beam, offset, obs.freq_hz, obs.telescope.diameters_m)
    ant1, ant2 = obs.baselines
    return baseline_mean_gain(beams, dish_type, ant1, ant2)
