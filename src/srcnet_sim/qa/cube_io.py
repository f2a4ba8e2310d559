"""A FITS image cube as the line finder reads it: its geometry (WCS, channels, per-plane restoring beams) and its
planes, a bounded slab at a time from the memory-mapped file (never the whole cube).

Accepted: a primary image with axes RA---SIN (or any celestial pair) 1 and 2, FREQ 3 or 4 (the other of 3 and 4, if
present, STOKES or any axis: its first plane is read), BUNIT Jy/beam, and the restoring beam of each plane either in a
BEAMS binary table (BMAJ, BMIN arcsec, BPA deg, CHAN; CASA's layout, as imaging.fits.CubeFile writes it) or as
BMAJ/BMIN/BPA (deg) in the primary header for every plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from srcnet_sim.errors import QAError

FWHM_AREA = np.pi / (4.0 * np.log(2.0))  # a Gaussian of FWHM a x b has the area FWHM_AREA x a x b (peak 1)


def _freq_axis(header: fits.Header) -> int | None:
    """The 1-based FITS axis whose CTYPE is FREQ, or None."""
    for axis in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{axis}", "")).upper().startswith("FREQ"):
            return axis
    return None


def is_line_cube(path: Path) -> bool:
    """True when the FITS file's primary image has a FREQ axis of more than one plane (a spectral-line cube)."""
    try:
        header = fits.getheader(path, 0)
    except (OSError, TypeError, IndexError):
        return False
    axis = _freq_axis(header)
    return axis is not None and int(header.get(f"NAXIS{axis}", 1)) > 1


@dataclass(frozen=True)
class CubeGeometry:
    """What the finder needs of a cube: shape (n_planes, ny, nx), per-plane centres freq_hz (n_planes,) and the plane
    width channel_width_hz (> 0), the restoring beams (n_planes,) FWHM major/minor (deg) and PA (deg), the pixel
    size cell_deg, the celestial WCS (0-based pixel x, y <-> RA, Dec deg), and the primary header."""

    path: Path
    shape: tuple[int, int, int]
    freq_hz: np.ndarray
    channel_width_hz: float
    beam_major_deg: np.ndarray
    beam_minor_deg: np.ndarray
    beam_pa_deg: np.ndarray
    cell_deg: float
    celestial: WCS
    header: fits.Header
    freq_axis: int  # 1-based FITS axis of FREQ (3 or 4)

    @property
    def beam_area_px(self) -> np.ndarray:
        """(n_planes,) area of each plane's restoring beam in pixels: pi BMAJ BMIN / (4 ln 2) / cell^2."""
        return FWHM_AREA * self.beam_major_deg * self.beam_minor_deg / self.cell_deg**2

    @property
    def beam_major_px(self) -> float:
        """The median over the planes of BMAJ, pixels (the finder's spatial scale)."""
        return float(np.nanmedian(self.beam_major_deg) / self.cell_deg)


def _beams(hdul: fits.HDUList, header: fits.Header, n_planes: int, path: Path) -> tuple[np.ndarray, ...]:
    """(major_deg, minor_deg, pa_deg), each (n_planes,), from the BEAMS table or the primary header."""
    if "BEAMS" in hdul:
        table = hdul["BEAMS"].data
        chan = np.asarray(table["CHAN"], dtype=int) if "CHAN" in table.names else np.arange(len(table))
        pol = np.asarray(table["POL"], dtype=int) if "POL" in table.names else np.zeros(len(table), dtype=int)
        rows = np.flatnonzero(pol == pol.min())
        if len(rows) != n_planes or not np.array_equal(np.sort(chan[rows]), np.arange(n_planes)):
            raise QAError(f"qa: {path.name}'s BEAMS table has {len(rows)} rows for {n_planes} planes")
        order = rows[np.argsort(chan[rows])]
        units = {name: str(hdul["BEAMS"].header.get(f"TUNIT{i + 1}", "arcsec")).strip().lower()
                 for i, name in enumerate(table.names)}
        scale = {"arcsec": 1 / 3600.0, "deg": 1.0, "degree": 1.0, "degrees": 1.0}
        major = np.asarray(table["BMAJ"], dtype=np.float64)[order] * scale.get(units.get("BMAJ", "arcsec"), 1 / 3600.0)
        minor = np.asarray(table["BMIN"], dtype=np.float64)[order] * scale.get(units.get("BMIN", "arcsec"), 1 / 3600.0)
        pa = np.asarray(table["BPA"], dtype=np.float64)[order]
        return major, minor, pa
    if header.get("BMAJ"):
        full = lambda key, default: np.full(n_planes, float(header.get(key, default)))  # noqa: E731
        return full("BMAJ", 0.0), full("BMIN", header["BMAJ"]), full("BPA", 0.0)
    raise QAError(f"qa: {path.name} has no restoring beam (neither a BEAMS table nor BMAJ/BMIN in its header)")


def read_geometry(path: Path) -> CubeGeometry:
    """The geometry of the cube at `path`; QAError (one line) when it is not a restored Jy/beam cube."""
    path = Path(path)
    try:
        with fits.open(path, memmap=True) as hdul:
            header = hdul[0].header.copy()
            axis = _freq_axis(header)
            naxis = int(header.get("NAXIS", 0))
            if axis is None or axis not in (3, 4) or naxis < 3:
                raise QAError(f"qa: {path.name} is not a cube (needs axes RA, DEC and FREQ as axis 3 or 4)")
            n_planes, ny, nx = int(header[f"NAXIS{axis}"]), int(header["NAXIS2"]), int(header["NAXIS1"])
            beams = _beams(hdul, header, n_planes, path)
    except OSError as exc:
        raise QAError(f"qa: {path} is not a readable FITS cube ({exc})") from exc
    unit = str(header.get("BUNIT", "")).strip().upper().replace(" ", "")
    if unit not in ("JY/BEAM", "JY/BM"):
        raise QAError(f"qa: {path.name} has BUNIT {header.get('BUNIT')!r}; the line finder needs Jy/beam")
    wcs = WCS(header)
    if not wcs.has_celestial:
        raise QAError(f"qa: {path.name} has no celestial axes (RA, DEC)")
    spectral = wcs.sub([axis])
    freq = np.asarray(spectral.pixel_to_world_values(np.arange(n_planes)), dtype=np.float64).ravel()
    unit_scale = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}.get(str(spectral.wcs.cunit[0]).lower(), 1.0)
    freq = freq * unit_scale if unit_scale != 1.0 else freq
    width = abs(float(freq[1] - freq[0]))
    if not width > 0:
        raise QAError(f"qa: {path.name}'s FREQ axis has CDELT{axis} = 0")
    cell = abs(float(header.get("CDELT2", 0.0))) or float(np.sqrt(abs(np.linalg.det(wcs.celestial.pixel_scale_matrix))))
    if not np.all(np.asarray(beams[0]) > 0):
        raise QAError(f"qa: {path.name} has a plane whose restoring beam is 0")
    return CubeGeometry(path=path, shape=(n_planes, ny, nx), freq_hz=freq, channel_width_hz=width,
                        beam_major_deg=beams[0], beam_minor_deg=beams[1], beam_pa_deg=beams[2], cell_deg=cell,
                        celestial=wcs.celestial, header=header, freq_axis=axis)


class CubeReader:
    """The planes of a cube, read as float32 from the memory-mapped primary image: open with `with`."""

    def __init__(self, geometry: CubeGeometry) -> None:
        self.geometry = geometry
        self._hdul: fits.HDUList | None = None

    def __enter__(self) -> CubeReader:
        self._hdul = fits.open(self.geometry.path, memmap=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def planes(self, z0: int, z1: int, y: slice = slice(None), x: slice = slice(None)) -> np.ndarray:
        """(z1 - z0, ny', nx') Jy/beam of planes [z0, z1) (rows y, columns x), NaN where the cube is blank."""
        data = self._hdul[0].data
        spare = data.ndim - 3  # numpy axes before (freq, y, x) or around them
        if self.geometry.freq_axis == 3:
            index = (0,) * spare + (slice(z0, z1), y, x)
        else:  # FREQ is FITS axis 4, numpy axis 0; axis 3 (STOKES) is numpy axis 1: its first plane
            index = (slice(z0, z1), 0, y, x)
        return np.array(data[index], dtype=np.float32)
