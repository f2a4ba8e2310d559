"""Physical constants and unit conversions, defined once (SI inside; these convert at the edges).

Values from astropy (CODATA 2018; the speed of light, Boltzmann's constant and the jansky are exact in SI).
"""

from __future__ import annotations

import math

from astropy import constants as _constants
from astropy import units as _units

SPEED_OF_LIGHT_M_S: float = float(_constants.c.si.value)  # 299 792 458 m/s
BOLTZMANN_J_K: float = float(_constants.k_B.si.value)  # 1.380649e-23 J/K
JANSKY_W_M2_HZ: float = float((1 * _units.Jy).si.value)  # 1e-26 W m^-2 Hz^-1
SECONDS_PER_DAY: float = 86400.0  # MJD days <-> MJD seconds (UTC, as casacore's TIME)
SECONDS_PER_HOUR: float = 3600.0
ARCSEC_PER_DEG: float = 3600.0
RAD_PER_DEG: float = math.pi / 180.0
RAD_PER_ARCSEC: float = RAD_PER_DEG / ARCSEC_PER_DEG
