"""Primary beams of tracking dishes: real voltage patterns per dish type, polarisation, channel and source.

Models (`BEAM`):
  - "gaussian": frequency-scaled circular Gaussians, power FWHM 1.25 lambda / D per dish diameter;
  - "gaussian-15m": the same with every dish 15 m (the seed's beam);
  - "everybeam": the libraries' dish models. SKA 15 m dishes: EveryBeam's SKA-Mid analytical response
    (`skamid_analytical`, EveryBeam >= 0.6: an unblocked uniformly illuminated 15 m aperture, E = 2 J1(x) / x with
    x = pi D sin(theta) / lambda, the same for X and Y, no leakage, time-independent). MeerKAT 13.5 m dishes: katbeam's
    JimBeam `MKAT-AA-L-JIM-2020` (Mauch et al. 2020: a cosine-taper fit to holography with its own FWHM and squint
    per polarisation and axis, 900-1650 MHz, no cross-polarisation). The MeerKAT pattern is elliptical and squinted,
    fixed to the alt-az mount, so it turns on the sky with the parallactic angle: `PolarisedBeams` gives the H and V
    patterns of every dish type at each time step's angle (a diagonal Jones matrix: neither model has leakage terms);
  - "none": no beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import j1

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S

FWHM_FACTOR = 1.25  # power-beam FWHM = 1.25 lambda / D (the seed's field-of-view rule)
BEAM_MODELS = ("gaussian", "gaussian-15m", "everybeam", "none")
SKA_DISH_DIAMETER_M = 15.0  # EveryBeam's SkaMid telescope (telescope/skamid.cc: kDiameter 15 m, kBlockage 0 m)
MEERKAT_DISH_DIAMETER_M = 13.5
KATBEAM_MODEL = "MKAT-AA-L-JIM-2020"
KATBEAM_BAND_HZ = (900e6, 1650e6)  # the frequencies of katbeam's L-band table (it clamps outside them)
# katbeam's cosine taper reaches sqrt(1/2) (half power) at r = 0.5 FWHM: its argument is r times this (jimbeam.py).
KATBEAM_TAPER_SCALE = 1.18896478


def power_beam_fwhm_rad(freq_hz: np.ndarray | float, diameter_m: np.ndarray | float) -> np.ndarray:
    """FWHM of a dish's power beam, radians: 1.25 lambda / D."""
    return FWHM_FACTOR * SPEED_OF_LIGHT_M_S / (np.asarray(freq_hz) * np.asarray(diameter_m))


def gaussian_voltage_beam(offset_rad: np.ndarray, freq_hz: np.ndarray, diameters_m: np.ndarray) -> np.ndarray:
    """(n_diameter, n_chan, n_src) real voltage pattern E of dishes pointing at the phase centre.

    E = exp(-2 ln2 rho^2 / FWHM^2): the power pattern E^2 of a dish with itself has the FWHM of
    `power_beam_fwhm_rad`; a baseline between two dish types sees E_1 * E_2.

    Args:
        offset_rad: (n_src,) angular distance of each source from the pointing centre.
        freq_hz: (n_chan,) channel centres.
        diameters_m: (n_diameter,) one entry per dish type.
    """
    fwhm = power_beam_fwhm_rad(freq_hz[None, :], np.asarray(diameters_m)[:, None])  # (n_d, n_chan)
    return np.exp(-2.0 * np.log(2.0) * (offset_rad[None, None, :] / fwhm[:, :, None]) ** 2)


def airy_voltage_beam(offset_rad: np.ndarray, freq_hz: np.ndarray, diameter_m: float) -> np.ndarray:
    """(n_chan, n_src) EveryBeam's SKA-Mid analytical voltage pattern: 2 J1(x) / x, x = pi D sin(theta) / lambda.

    Real and signed (its sidelobes alternate), 1 on axis; theta is the angular distance from the pointing centre, so
    sin(theta) is EveryBeam's r = sqrt(l^2 + m^2) in the pointing frame.
    """
    x = np.pi * diameter_m * np.sin(offset_rad)[None, :] * np.asarray(freq_hz)[:, None] / SPEED_OF_LIGHT_M_S
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, 2.0 * j1(safe) / safe)


def cosine_taper(r: np.ndarray) -> np.ndarray:
    """katbeam's aperture-taper pattern cos(pi a) / (1 - 4 a^2), a = KATBEAM_TAPER_SCALE r, r in FWHMs from its centre
    (1 at 0, sqrt(1/2) at 0.5); at a = 1/2, where katbeam divides 0 by 0, its limit pi / 4."""
    a = KATBEAM_TAPER_SCALE * np.asarray(r)
    denominator = 1.0 - 4.0 * a * a
    singular = np.abs(denominator) < 1e-9
    return np.where(singular, np.pi / 4.0, np.cos(np.pi * a) / np.where(singular, 1.0, denominator))


@cache
def _katbeam_model():
    """katbeam's JimBeam of KATBEAM_MODEL, parsed once per process (it reads its table at construction)."""
    from katbeam import JimBeam

    return JimBeam(KATBEAM_MODEL)


def katbeam_polarised_beams(x_deg: np.ndarray, y_deg: np.ndarray, freq_hz: np.ndarray) -> np.ndarray:
    """(2, n_chan, n_src) katbeam's MeerKAT L-band H and V voltage patterns at offsets (x, y) in the dish's frame.

    Args:
        x_deg, y_deg: (n_src,) offsets from the pointing centre, degrees: x across elevation (towards increasing
            azimuth), y along elevation (towards the zenith), as holography measures them.
        freq_hz: (n_chan,) frequencies, within KATBEAM_BAND_HZ (katbeam clamps outside it).

    katbeam's model evaluated for all channels at once: its per-polarisation squints and FWHMs along x and y,
    interpolated linearly in frequency as JimBeam does, in a cosine taper (equal to JimBeam.HH / VV to round-off:
    tests/unit/instrument/test_beams.py).
    """
    model = _katbeam_model()
    freq_mhz = np.asarray(freq_hz, dtype=np.float64) / 1e6
    squint = np.array([np.interp(freq_mhz, model.freqMHzlist, row) for row in model.squintlist])  # (4, n_chan) deg
    fwhm = np.array([np.interp(freq_mhz, model.freqMHzlist, row) for row in model.fwhmlist])  # Hx Hy Vx Vy
    x, y = np.asarray(x_deg, dtype=np.float64)[None, :], np.asarray(y_deg, dtype=np.float64)[None, :]
    out = np.empty((2, len(freq_mhz), x.shape[1]))
    for pol in range(2):
        sx, sy, fx, fy = (a[:, None] for a in (squint[2 * pol], squint[2 * pol + 1], fwhm[2 * pol], fwhm[2 * pol + 1]))
        out[pol] = cosine_taper(np.sqrt(((x - sx) / fx) ** 2 + ((y - sy) / fy) ** 2))
    return out


def dish_frame_offsets_deg(l: np.ndarray, m: np.ndarray, parallactic_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) offsets in an alt-az dish's frame (degrees, see katbeam_polarised_beams) of sources at direction
    cosines (l, m) from the pointing centre (l towards east, m towards north), when the zenith lies at position angle
    `parallactic_rad` (north through east) from the pointing centre: y = the offset's component towards the zenith,
    x = its component towards increasing azimuth (west of the zenith direction on the sky)."""
    sin_p, cos_p = np.sin(parallactic_rad), np.cos(parallactic_rad)
    y = l * sin_p + m * cos_p
    x = m * sin_p - l * cos_p
    return np.degrees(x), np.degrees(y)


@dataclass(frozen=True)
class PolarisedBeams:
    """The H and V voltage patterns of every dish type towards a set of sources, at a parallactic angle.

    Dish types of `rotating` (katbeam's MeerKAT dishes) are evaluated at each angle in the dish frame; the others
    (`static`, EveryBeam's SKA dish: circular, the same for H and V) do not change.

    Attributes:
        static: (n_type, n_chan, n_src) the patterns of the non-rotating types (rows of rotating types unused).
        rotating: (n_type,) bool, the types with katbeam's pattern.
        l, m: (n_src,) direction cosines of the sources from the pointing centre.
        freq_hz: (n_chan,) channel centres.
    """

    static: np.ndarray
    rotating: np.ndarray
    l: np.ndarray
    m: np.ndarray
    freq_hz: np.ndarray

    def at(self, parallactic_rad: float, channels: slice = slice(None), sources: slice = slice(None)) -> np.ndarray:
        """(n_type, 2, n_chan, n_src) H and V patterns at the parallactic angle (rad) of one time step, of the
        channels and sources asked for (all by default)."""
        out = np.repeat(self.static[:, None, channels, sources], 2, axis=1)
        if np.any(self.rotating):
            x, y = dish_frame_offsets_deg(self.l[sources], self.m[sources], parallactic_rad)
            out[self.rotating] = katbeam_polarised_beams(x, y, self.freq_hz[channels])
        return out


def has_rotating_beams(model: str, diameters_m: np.ndarray) -> bool:
    """Whether BEAM=`model` gives dishes of this array patterns that differ between H and V and turn with the
    parallactic angle (everybeam with MeerKAT dishes)."""
    return model == "everybeam" and bool(np.any(np.asarray(diameters_m, dtype=float) == MEERKAT_DISH_DIAMETER_M))


def polarised_beams(model: str, lmn: np.ndarray, offset_rad: np.ndarray, freq_hz: np.ndarray,
                    diameters_m: np.ndarray) -> PolarisedBeams:
    """BEAM=everybeam's patterns (has_rotating_beams) of each dish type towards sources at (n_src, 3) direction
    cosines lmn and (n_src,) distances offset_rad from the pointing centre."""
    types, _ = dish_types(model, diameters_m)
    rotating = types == MEERKAT_DISH_DIAMETER_M
    static = np.ones((len(types), len(freq_hz), len(offset_rad)))
    for t in np.flatnonzero(~rotating):
        static[t] = airy_voltage_beam(offset_rad, freq_hz, float(types[t]))
    return PolarisedBeams(static=static, rotating=rotating, l=np.ascontiguousarray(lmn[:, 0]),
                          m=np.ascontiguousarray(lmn[:, 1]), freq_hz=np.asarray(freq_hz, dtype=np.float64))


def check_library_beams(diameters_m: np.ndarray, freq_hz: np.ndarray) -> str | None:
    """Why BEAM=everybeam cannot model this array and band, or None: EveryBeam has the SKA-Mid 15 m dish, katbeam
    the MeerKAT 13.5 m dish in 900-1650 MHz."""
    other = sorted(set(map(float, diameters_m)) - {SKA_DISH_DIAMETER_M, MEERKAT_DISH_DIAMETER_M})
    if other:
        return (f"everybeam models SKA-Mid 15 m dishes (EveryBeam) and MeerKAT 13.5 m dishes (katbeam); the array has "
                f"{', '.join(f'{d:g}' for d in other)} m dishes: use BEAM=gaussian")
    if MEERKAT_DISH_DIAMETER_M in set(map(float, diameters_m)):
        low, high = KATBEAM_BAND_HZ
        if float(np.min(freq_hz)) < low or float(np.max(freq_hz)) > high:
            return (f"everybeam: katbeam's MeerKAT L-band model covers {low / 1e6:g}-{high / 1e6:g} MHz, the channels span "
                    f"{np.min(freq_hz) / 1e6:.6g}-{np.max(freq_hz) / 1e6:.6g} MHz: choose frequencies within it, a "
                    "telescope without MeerKAT dishes, or BEAM=gaussian")
    return None


def beam_parameters(model: str) -> dict[str, tuple[str | float, str]]:
    """FITS cards (value, comment) that state a beam model's parameters, for the truth catalogue's header."""
    if model in ("gaussian", "gaussian-15m"):
        cards: dict[str, tuple[str | float, str]] = {"PBFWHMF": (FWHM_FACTOR, "Gaussian power FWHM = PBFWHMF lambda / D")}
        if model == "gaussian-15m":
            cards["PBDIAM"] = (SKA_DISH_DIAMETER_M, "[m] D of every dish")
        return cards
    if model == "everybeam":
        from importlib.metadata import version

        return {"PBSKA": ("EveryBeam skamid_analytical", "15 m dishes: E = 2 J1(x)/x, x = pi D sin(r)/lambda"),
                "PBSKAD": (SKA_DISH_DIAMETER_M, "[m] its unblocked aperture"),
                "PBMKAT": (f"katbeam {version('katbeam')} {KATBEAM_MODEL}", "13.5 m dishes"),
                "PBMKATPL": ("H, V; turns with the parallactic angle", "per-polarisation alt-az MeerKAT pattern")}
    return {}


def dish_types(model: str, diameters_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The beam types of an array: (n_type,) diameters (m), and (n_dish,) the type index of each dish.

    "none" has one type (diameter unused); "gaussian-15m" treats every dish as 15 m (the seed's beam).
    """
    if model == "none":
        return np.zeros(1), np.zeros(len(diameters_m), dtype=np.int64)
    if model == "gaussian-15m":
        diameters_m = np.full(len(diameters_m), 15.0)
    types, dish_type = np.unique(diameters_m, return_inverse=True)
    return types, dish_type.astype(np.int64)


def dish_beams(model: str, offset_rad: np.ndarray, freq_hz: np.ndarray, diameters_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voltage beams per dish type and the type index of each dish, for models whose beams are the same in H and V
    and do not turn on the sky (not has_rotating_beams: see polarised_beams).

    Returns:
        beams: (n_type, n_chan, n_src) voltage patterns.
        dish_type: (n_dish,) int index into the first axis of `beams`.
    """
    types, dish_type = dish_types(model, diameters_m)
    if model == "none":
        return np.ones((1, len(freq_hz), len(offset_rad))), dish_type
    if model == "everybeam":
        if has_rotating_beams(model, types):
            raise ValueError("MeerKAT dishes' beams differ between H and V and turn with the parallactic angle: "
                             "use polarised_beams")
        return np.stack([airy_voltage_beam(offset_rad, freq_hz, float(d)) for d in types]), dish_type
    return gaussian_voltage_beam(offset_rad, freq_hz, types), dish_type
