"""The telescope name an MS carries: an observatory CASA knows, with the true array name beside it.

CASA finds an MS's observatory position by looking up OBSERVATION.TELESCOPE_NAME in its
Observatories table (casacore MSMetaData::getObservatoryPosition -> MeasTable::Observatory);
it reads no position from the MS itself, and an unknown name stops `listobs` (an astronomer's first
command on a new MS) and whatever else asks for the position. CASA 6.7's table has MeerKAT but no SKA-Mid.
SKA-Mid is built on the MeerKAT site around the MeerKAT dishes, so an array whose reference
point lies within CASA_SITE_RADIUS_M of a known observatory is written with that observatory's
name in TELESCOPE_NAME, and its own name (e.g. "SKA-Mid AA*") in the ARRAY_NAME column of the
OBSERVATION table, where our readers (imaging, ObsCore sidecars) take it from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from srcnet_sim.instrument import Site

ARRAY_NAME_COLUMN = "ARRAY_NAME"
CASA_SITE_RADIUS_M = 10_000.0
# From casadata 2025.9.22, geodetic/Observatories (WGS84 longitude deg, latitude deg, height m).
CASA_OBSERVATORIES = {"MeerKAT": (21.4439, -30.7132, 1050.0)}


def casa_observatory(site: Site) -> str | None:
    """Name of the CASA observatory within CASA_SITE_RADIUS_M of `site` (horizontal distance), if any."""
    here = _horizontal_unit_vector(site.lon_deg, site.lat_deg)
    for name, (lon_deg, lat_deg, _) in CASA_OBSERVATORIES.items():
        there = _horizontal_unit_vector(lon_deg, lat_deg)
        distance_m = 6_371_000.0 * float(np.arccos(np.clip(here @ there, -1.0, 1.0)))
        if distance_m <= CASA_SITE_RADIUS_M:
            return name
    return None


def ms_telescope_name(array_name: str, site: Site) -> str:
    """What OBSERVATION.TELESCOPE_NAME holds: the CASA observatory at the site, else the array's name."""
    return casa_observatory(site) or array_name


def read_array_name(observation_table) -> str:
    """The array's name from an open OBSERVATION table: ARRAY_NAME when written, else TELESCOPE_NAME ("" if none)."""
    if observation_table.nrows() == 0:
        return ""
    column = ARRAY_NAME_COLUMN if ARRAY_NAME_COLUMN in observation_table.colnames() else "TELESCOPE_NAME"
    return str(observation_table.getcell(column, 0))


def _horizontal_unit_vector(lon_deg: float, lat_deg: float) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
