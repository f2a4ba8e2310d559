"""The peer's side of the benchmarks: matvis `simulate_vis` arguments for one srcnet-sim Observation.

matvis models unpolarised point sources without smearing; it is given the same dishes (east/north/up
from the array reference point), sources, channels, times and Gaussian beams of the two dish diameters.
"""

from __future__ import annotations

from astropy.time import Time

from srcnet_sim.constants import SECONDS_PER_DAY
from srcnet_sim.instrument.array import itrf_to_enu


def simulate_vis_arguments(obs) -> dict:
    """Keyword arguments of matvis.simulate_vis for `obs` (a srcnet_sim Observation), single precision, 1 product."""
    from pyuvdata.analytic_beam import GaussianBeam

    tel = obs.telescope
    sky = obs.sky
    return {
        "ants": dict(enumerate(itrf_to_enu(tel.itrf_m, tel.site))),
        "fluxes": sky.stokes_at(obs.freq_hz)[:, 0, :].T,
        "ra": sky.ra_rad,
        "dec": sky.dec_rad,
        "freqs": obs.freq_hz,
        "times": Time(obs.times_s / SECONDS_PER_DAY, format="mjd", scale="utc"),
        "beams": [GaussianBeam(diameter=13.5), GaussianBeam(diameter=15.0)],
        "beam_idx": (tel.diameters_m == 15.0).astype(int),
        "telescope_loc": tel.site.earth_location(),
        "polarized": False,
        "precision": 1,
    }
