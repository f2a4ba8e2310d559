"""Column units of catalogue FITS tables, including the upper-case spellings some surveys write.

The MIGHTEE Level-1 release writes TUNITn in upper case (`DEG`, `JY`, `JY/BEAM`, `HZ`), which
is not FITS-standard and which astropy does not parse; Karabo's reader maps these spellings by
hand. Here a unit is parsed as the FITS standard (then astropy's generic format) reads it,
and otherwise looked up among the unambiguous upper-case spellings below.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from srcnet_sim.errors import UserInputError

# Upper-case spellings seen in survey catalogues, each with one meaning. Prefixed flux units
# (MJY: mJy or MJy?) are ambiguous in upper case and deliberately absent.
UPPER_CASE_UNITS: dict[str, u.UnitBase] = {
    "DEG": u.deg, "DEGREE": u.deg, "DEGREES": u.deg,
    "ARCSEC": u.arcsec, "ARCMIN": u.arcmin, "RAD": u.rad, "RADIAN": u.rad, "RADIANS": u.rad,
    "JY": u.Jy, "JY/BEAM": u.Jy / u.beam,
    "HZ": u.Hz, "KHZ": u.kHz, "MHZ": u.MHz, "GHZ": u.GHz,
}

KINDS: dict[str, tuple[u.UnitBase, ...]] = {
    "angle": (u.deg,),
    "flux density": (u.Jy, u.Jy / u.beam),
    "frequency": (u.Hz,),
}


def parse_unit(text: str, column: str, source: str, setting: str = "SKY_MODEL") -> u.UnitBase:
    """The astropy unit of a TUNITn string; UserInputError naming the column when it is unknown."""
    for fmt in ("fits", "generic"):
        try:
            return u.Unit(text, format=fmt)
        except ValueError:
            pass
    key = "".join(text.split()).upper()
    if key in UPPER_CASE_UNITS:
        return UPPER_CASE_UNITS[key]
    raise UserInputError(setting, f"{source}: column {column} has the unknown unit {text!r}; use a FITS unit "
                         "(deg, arcsec, Jy, Jy/beam, Hz, MHz, ...) or one of " + ", ".join(UPPER_CASE_UNITS))


def to_value(values: np.ndarray, unit: u.UnitBase, kind: str, target: u.UnitBase, column: str, source: str,
             setting: str = "SKY_MODEL") -> np.ndarray:
    """Values of a column in `unit` converted to `target`, after checking that `unit` measures `kind`.

    A flux density per beam (Jy/beam, as a peak brightness) is taken as a flux density in Jy,
    as the seed workflow and Karabo do for point sources.
    """
    for base in KINDS[kind]:
        if unit.is_equivalent(base):
            per_beam_as_jy = not base.is_equivalent(target)  # Jy/beam read as Jy
            return values * (unit.to(base) * (1.0 if per_beam_as_jy else base.to(target)))
    allowed = ", ".join(str(b) for b in KINDS[kind])
    raise UserInputError(setting, f"{source}: column {column} has the unit {unit.to_string()!r}, which is not "
                         f"a {kind} ({allowed})")
