"""Checks of an image grid against the sky and the array: within the horizon, and holding baselines."""

from __future__ import annotations

import math

import numpy as np

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.errors import UserInputError
from srcnet_sim.simulate import geometry

UV_CHECK_TIMES = 24  # the projected baselines are checked at up to this many times of the observation


def check_horizon(setting: str, npix: int, cell_rad: float) -> None:
    """An image (SIN projection) must lie within the visible hemisphere: its corners at direction cosine < 1."""
    half_diagonal = math.sqrt(2.0) * npix * cell_rad / 2.0
    if half_diagonal >= 1.0:
        raise UserInputError(setting, f"{cell_rad:.4g} rad x {npix} pixels reaches past the horizon (image corners at "
                             f"direction cosine {half_diagonal:.3g}); use a cell below {math.sqrt(2.0) / npix:.4g} rad")


def check_image_grid(npix: int, cell_rad: float, itrf_m: np.ndarray, times_s: np.ndarray, phase_centre_rad: tuple[float, float],
                     lowest_freq_hz: float) -> None:
    """Refuse an image grid that cannot hold any baseline, or an image wider than the visible sky.

    npix pixels of cell_rad (IMAGING_NPIXEL, IMAGING_CELLSIZE); dishes at (n_dish, 3) ITRF positions, m,
    observing (n_time,) MJD seconds at the (ra, dec) phase centre, rad, from lowest_freq_hz up.
    The uv grid holds |u|, |v| < 1 / (2 cell); the shortest projected baseline (nearest pair of dishes in the
    uv plane, at the lowest frequency) is found at up to UV_CHECK_TIMES times of the observation.
    """
    from scipy.spatial import cKDTree

    check_horizon("IMAGING_CELLSIZE", npix, cell_rad)
    picks = np.unique(np.linspace(0, len(times_s) - 1, min(len(times_s), UV_CHECK_TIMES)).round().astype(int))
    dish_uvw = geometry.dish_uvw(itrf_m, times_s[picks], *phase_centre_rad)
    shortest_m = min(float(cKDTree(uvw[:, :2]).query(uvw[:, :2], k=2)[0][:, 1].min()) for uvw in dish_uvw)
    shortest = shortest_m * lowest_freq_hz / SPEED_OF_LIGHT_M_S
    limit = 1.0 / (2.0 * cell_rad)
    if shortest >= limit:
        raise UserInputError("IMAGING_CELLSIZE", f"a cell of {cell_rad:.4g} rad holds baselines up to {limit:.0f} "
                             f"wavelengths but the shortest is {shortest:.0f}: no visibility would fall on the image; "
                             f"use a cell below {1.0 / (2.0 * shortest):.4g} rad (or unset it for FOV / npixel)")
