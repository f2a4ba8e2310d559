"""The constants written out in srcnet_sim.constants are astropy's (CODATA 2018, IAU), bit for bit."""

from __future__ import annotations

import math

from astropy import constants, units

from srcnet_sim import constants as ours


def test_constants_are_astropys():
    assert ours.SPEED_OF_LIGHT_M_S == constants.c.si.value
    assert ours.BOLTZMANN_J_K == constants.k_B.si.value
    assert ours.JANSKY_W_M2_HZ == (1 * units.Jy).si.value
    assert ours.SECONDS_PER_DAY == units.day.to(units.s) and ours.SECONDS_PER_HOUR == units.hour.to(units.s)
    assert ours.ARCSEC_PER_DEG == units.deg.to(units.arcsec)
    assert math.isclose(ours.RAD_PER_ARCSEC, units.arcsec.to(units.rad), rel_tol=1e-15)
