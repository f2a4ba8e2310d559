"""The SKY_MODEL setting resolved into the sky of a run: a named model (SYNTHETIC, SYNTHETIC_HI, MIGHTEE_L1
downloaded once and cached) or a catalogue file, checked and cut to the field around the phase centre."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.fs.input_files import regular_file
from srcnet_sim.sky.catalogues import NAMED_SKY_MODELS, read_catalogue, read_mightee_fits, warn_of_oddities
from srcnet_sim.sky.model import SkyModel
from srcnet_sim.sky.synthetic import synthetic_field
from srcnet_sim.sky.synthetic_hi import synthetic_hi_field

logger = logging.getLogger(__name__)


def load_sky_model(
    spec: str, catalogue_path: str | None, ra0_rad: float, dec0_rad: float, radius_rad: float, n_synthetic: int, seed: int,
    freq_hz: np.ndarray | None = None, cache_dir: str | None = None, mightee_url: str | None = None,
) -> SkyModel:
    """Resolve a SKY_MODEL setting and keep the sources within radius_rad of the phase centre.

    spec: SYNTHETIC (seeded field of n_synthetic sources inside the radius), SYNTHETIC_HI (n_synthetic HI galaxies
    whose lines fall in the channels freq_hz, sky.synthetic_hi), MIGHTEE_L1 (the
    FITS catalogue at catalogue_path; without one, the survey downloaded once from mightee_url
    into cache_dir and reused, see sky.download), or the path of a catalogue file. A catalogue with any
    non-finite or impossible value (fluxes extrapolated to the channels freq_hz included) is refused.
    """
    key = spec.strip().upper()
    if key == "SYNTHETIC":
        return synthetic_field(ra0_rad, dec0_rad, radius_rad, n_synthetic, seed)
    if key == "SYNTHETIC_HI":
        if freq_hz is None:
            raise ValueError("SYNTHETIC_HI needs the channel frequencies")
        return synthetic_hi_field(ra0_rad, dec0_rad, radius_rad, n_synthetic, seed, freq_hz)
    if key == "MIGHTEE_L1":
        if catalogue_path:
            path = Path(catalogue_path).expanduser()
            if not os.path.lexists(path):
                raise UserInputError("SKY_MODEL_PATH", f"{path} does not exist; put the MIGHTEE COSMOS Level-1 FITS "
                                     "catalogue there, point SKY_MODEL_PATH at it, or unset it to download the survey")
            regular_file(path, "SKY_MODEL_PATH", "catalogue file")
        else:
            from srcnet_sim.sky.download import MIGHTEE_L1_URL, fetch_mightee_l1  # only when it downloads

            path = fetch_mightee_l1(cache_dir, mightee_url or MIGHTEE_L1_URL)
        sky = read_mightee_fits(path)
    else:
        path = Path(spec).expanduser()
        if not os.path.lexists(path):
            raise UserInputError("SKY_MODEL", f"unknown sky model {spec!r}: use {', '.join(NAMED_SKY_MODELS)} "
                                 "or the path of a catalogue file (OSKAR text, CSV, FITS, Karabo HI HDF5)")
        sky = read_catalogue(path)
    problem = sky.first_problem(freq_hz)
    if problem:
        setting = "SKY_MODEL" if key != "MIGHTEE_L1" else ("SKY_MODEL_PATH" if catalogue_path else "MIGHTEE_L1_URL")
        raise UserInputError(setting, f"{path}: {problem}")
    warn_of_oddities(sky, str(path))
    if freq_hz is not None:
        warn_of_lines_outside(sky, np.asarray(freq_hz, dtype=np.float64), str(path))
    kept = sky.within(ra0_rad, dec0_rad, radius_rad)
    if len(kept) == 0:
        raise UserInputError("SKY_MODEL", f"no source of {spec} lies within {np.degrees(radius_rad):.3f} deg "
                             "of the phase centre")
    return kept


def warn_of_lines_outside(sky: SkyModel, freq_hz: np.ndarray, source: str) -> None:
    """Log one warning with the count of lines whose profile lies wholly outside the band of the channel centres
    freq_hz (Hz; channel edges half a spacing beyond): they add nothing to the visibilities."""
    if not sky.has_lines:
        return
    half = float(np.min(np.diff(np.sort(freq_hz)))) / 2 if len(freq_hz) > 1 else 0.0
    lo, hi = sky.line_support_hz()
    outside = np.flatnonzero((sky.line_flux_jy_hz != 0) & ((hi <= freq_hz.min() - half) | (lo >= freq_hz.max() + half)))
    if outside.size:
        logger.warning("SKY_MODEL: %d of %d lines of %s lie wholly outside the band %.6g-%.6g MHz (first: #%d at "
                       "%.6g MHz); they add nothing", outside.size, int(np.count_nonzero(sky.line_flux_jy_hz)), source,
                       (freq_hz.min() - half) / 1e6, (freq_hz.max() + half) / 1e6, outside[0] + 1,
                       sky.line_freq_hz[outside[0]] / 1e6)
