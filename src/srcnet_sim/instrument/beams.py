"""Primary beams: frequency-scaled circular Gaussian voltage patterns of tracking dishes."""

from __future__ import annotations

import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S

FWHM_FACTOR = 1.25  # power-beam FWHM = 1.25 lambda / D (the seed's field-of-view rule)
BEAM_MODELS = ("gaussian", "gaussian-15m", "none")


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
    return gaussian_voltage_beam(offset_rad, freq_hz, types), dish_type
