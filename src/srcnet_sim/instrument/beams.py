"""Primary beams of tracking dishes: real voltage patterns per dish type, channel and source.

Models (`BEAM`):
  - "gaussian": frequency-scaled circular Gaussians, power FWHM 1.25 lambda / D per dish diameter;
  - "gaussian-15m": the same with every dish 15 m (the seed's beam);
  - "everybeam": the libraries' dish models. SKA 15 m dishes: EveryBeam's SKA-Mid analytical response
    (`skamid_analytical`, EveryBeam >= 0.6: an unblocked uniformly illuminated 15 m aperture, E = 2 J1(x) / x with
    x = pi D sin(theta) / lambda, the same for X and Y, no leakage, time-independent). MeerKAT 13.5 m dishes: katbeam's
    JimBeam `MKAT-AA-L-JIM-2020` (Mauch et al. 2020: a cosine-taper fit to holography, per-polarisation FWHM and
    squint, 900-1650 MHz), averaged over the parallactic angle and over H and V (see `katbeam_voltage_beam`);
  - "none": no beam.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S

FWHM_FACTOR = 1.25  # power-beam FWHM = 1.25 lambda / D (the seed's field-of-view rule)
BEAM_MODELS = ("gaussian", "gaussian-15m", "everybeam", "none")
SKA_DISH_DIAMETER_M = 15.0  # EveryBeam's SkaMid telescope (telescope/skamid.cc: kDiameter 15 m, kBlockage 0 m)
MEERKAT_DISH_DIAMETER_M = 13.5
KATBEAM_MODEL = "MKAT-AA-L-JIM-2020"
KATBEAM_BAND_HZ = (900e6, 1650e6)  # the frequencies of katbeam's L-band table (it clamps outside them)
KATBEAM_AZIMUTHS = 64  # parallactic angles averaged (the pattern's ellipticity and squint are its only phi terms)
KATBEAM_RADIAL_STEP_FWHM = 1.0 / 512  # radial grid of the averaged pattern, in units of the H FWHM


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


def katbeam_voltage_beam(offset_rad: np.ndarray, freq_hz: np.ndarray) -> np.ndarray:
    """(n_chan, n_src) katbeam's MeerKAT L-band voltage pattern, averaged over parallactic angle and polarisation.

    E(theta) = < (HH + VV) / 2 >_phi around the pointing centre: an alt-az dish's elliptical, squinted pattern turns on
    the sky with the parallactic angle, and over a track a source sees it at every phi; the H and V patterns differ by
    their few per cent in FWHM and their arcminute squints. The scalar predictor carries one real pattern per dish
    type, so this mean is what it can apply (the per-polarisation, per-time Jones terms are not modelled). Sampled on a
    radial grid of FWHM/512 and interpolated linearly (error < 1e-5 of the peak; tests/unit/instrument/test_beams.py).
    """
    from katbeam import JimBeam

    model = JimBeam(KATBEAM_MODEL)
    offset_deg = np.degrees(np.asarray(offset_rad, dtype=np.float64))
    phi = 2.0 * np.pi * (np.arange(KATBEAM_AZIMUTHS) + 0.5) / KATBEAM_AZIMUTHS
    out = np.empty((len(freq_hz), len(offset_deg)))
    for k, freq in enumerate(np.asarray(freq_hz, dtype=np.float64)):
        freq_mhz = freq / 1e6
        step = KATBEAM_RADIAL_STEP_FWHM * float(np.interp(freq_mhz, model.freqMHzlist, model.fwhmlist[0]))
        radius = np.arange(0.0, offset_deg.max(initial=0.0) + 2.0 * step, step)
        x, y = radius[:, None] * np.cos(phi)[None, :], radius[:, None] * np.sin(phi)[None, :]
        mean = 0.5 * (model.HH(x, y, freq_mhz) + model.VV(x, y, freq_mhz)).mean(axis=1)
        out[k] = np.interp(offset_deg, radius, mean)
    return out


def library_voltage_beams(offset_rad: np.ndarray, freq_hz: np.ndarray, diameters_m: np.ndarray) -> np.ndarray:
    """(n_type, n_chan, n_src) BEAM=everybeam's pattern of each dish type (15 m: EveryBeam, 13.5 m: katbeam)."""
    models = {SKA_DISH_DIAMETER_M: lambda: airy_voltage_beam(offset_rad, freq_hz, SKA_DISH_DIAMETER_M),
              MEERKAT_DISH_DIAMETER_M: lambda: katbeam_voltage_beam(offset_rad, freq_hz)}
    return np.stack([models[float(d)]() for d in diameters_m])


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
                "PBMKATAV": ("(HH+VV)/2, mean over parallactic angle", "how the MeerKAT pattern is made scalar")}
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
    """Voltage beams per dish type and the type index of each dish.

    Returns:
        beams: (n_type, n_chan, n_src) voltage patterns.
        dish_type: (n_dish,) int index into the first axis of `beams`.
    """
    types, dish_type = dish_types(model, diameters_m)
    if model == "none":
        return np.ones((1, len(freq_hz), len(offset_rad))), dish_type
    if model == "everybeam":
        return library_voltage_beams(offset_rad, freq_hz, types), dish_type
    return gaussian_voltage_beam(offset_rad, freq_hz, types), dish_type
