"""FITS images with the axes and keywords WSClean writes (RA---SIN, DEC--SIN, FREQ, STOKES)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from srcnet_sim import __version__
from srcnet_sim.constants import SECONDS_PER_DAY
from srcnet_sim.imaging.beam import Beam


@dataclass(frozen=True)
class ImageDescription:
    """What the header states: phase centre (rad), cell (rad), band, start and end (MJD s), telescope, beam."""

    phase_centre_rad: tuple[float, float]
    cell_rad: float
    freq_low_hz: float
    freq_high_hz: float
    start_time_s: float
    end_time_s: float
    telescope: str
    beam: Beam
    object_name: str = ""


def header(desc: ImageDescription, npix: int, unit: str = "JY/BEAM", extra: dict | None = None) -> fits.Header:
    h = fits.Header()
    h["BUNIT"] = unit
    h["BMAJ"] = np.degrees(desc.beam.major_rad)
    h["BMIN"] = np.degrees(desc.beam.minor_rad)
    h["BPA"] = np.degrees(desc.beam.pa_rad)
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "FK5"
    h["BTYPE"] = "Intensity"
    h["TELESCOP"] = desc.telescope
    h["OBJECT"] = desc.object_name
    h["ORIGIN"] = f"srcnet-sim {__version__}"
    for axis, (ctype, crval, cdelt, cunit) in enumerate(
        [("RA---SIN", np.degrees(desc.phase_centre_rad[0]), -np.degrees(desc.cell_rad), "deg"),
         ("DEC--SIN", np.degrees(desc.phase_centre_rad[1]), np.degrees(desc.cell_rad), "deg"),
         ("FREQ", 0.5 * (desc.freq_low_hz + desc.freq_high_hz), desc.freq_high_hz - desc.freq_low_hz, "Hz"),
         ("STOKES", 1.0, 1.0, "")], start=1):
        h[f"CTYPE{axis}"] = ctype
        h[f"CRPIX{axis}"] = npix / 2 + 1 if axis <= 2 else 1.0
        h[f"CRVAL{axis}"] = crval
        h[f"CDELT{axis}"] = cdelt
        h[f"CUNIT{axis}"] = cunit
    h["SPECSYS"] = "TOPOCENT"
    start = Time(desc.start_time_s / SECONDS_PER_DAY, format="mjd", scale="utc")
    h["DATE-OBS"] = start.isot
    h["MJD-OBS"] = start.mjd
    end = Time(desc.end_time_s / SECONDS_PER_DAY, format="mjd", scale="utc")
    h["DATE-END"] = end.isot
    h["MJD-END"] = end.mjd
    h["OBSRA"] = np.degrees(desc.phase_centre_rad[0])
    h["OBSDEC"] = np.degrees(desc.phase_centre_rad[1])
    for key, value in (extra or {}).items():
        h[key] = value
    return h


def write_image(path: Path, image: np.ndarray, desc: ImageDescription, unit: str = "JY/BEAM", extra: dict | None = None) -> Path:
    """Write (npix, npix) `image` as a 4-axis FITS file; written under a temporary name, then renamed."""
    path = Path(path)
    hdu = fits.PrimaryHDU(np.asarray(image, dtype=np.float32)[None, None], header=header(desc, image.shape[0], unit, extra))
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        hdu.writeto(partial, overwrite=True)
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
