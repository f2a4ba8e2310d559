"""Physical constants and unit conversions, defined once (SI inside; these convert at the edges).

The speed of light and Boltzmann's constant are exact in the SI (since 2019, CODATA 2018) and the jansky is
defined as 1e-26 W m^-2 Hz^-1, so they are written out: importing astropy.units for them would cost every run
about 0.1 s. tests/unit/config/test_constants.py checks them against astropy's.
"""

from __future__ import annotations

import math

SPEED_OF_LIGHT_M_S: float = 299_792_458.0
BOLTZMANN_J_K: float = 1.380649e-23
JANSKY_W_M2_HZ: float = 1e-26
HI_REST_FREQ_HZ: float = 1_420_405_751.768  # the 21 cm line of neutral hydrogen (hyperfine transition), Hz
SECONDS_PER_DAY: float = 86400.0  # MJD days <-> MJD seconds (UTC, as casacore's TIME)
SECONDS_PER_HOUR: float = 3600.0
ARCSEC_PER_DEG: float = 3600.0
RAD_PER_DEG: float = math.pi / 180.0
RAD_PER_ARCSEC: float = RAD_PER_DEG / ARCSEC_PER_DEG
