"""FITS images with the axes and keywords WSClean writes (RA---SIN, DEC--SIN, FREQ, STOKES), and cubes of many FREQ
planes streamed a plane at a time with their restoring beams in a BEAMS table as CASA writes it."""

from __future__ import annotations

import contextlib
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


@dataclass(frozen=True)
class SpectralAxis:
    """The FREQ axis: n planes of width_hz, the first centred on first_hz (topocentric)."""

    first_hz: float
    width_hz: float
    n: int


def header(desc: ImageDescription, npix: int, unit: str = "JY/BEAM", extra: dict | None = None,
           spectral: SpectralAxis | None = None) -> fits.Header:
    """The primary header of an (n_stokes=1, n_freq, npix, npix) image; spectral: the FREQ axis of a cube (default:
    one MFS plane spanning the band)."""
    if spectral is None:
        spectral = SpectralAxis(0.5 * (desc.freq_low_hz + desc.freq_high_hz), desc.freq_high_hz - desc.freq_low_hz, 1)
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
         ("FREQ", spectral.first_hz, spectral.width_hz, "Hz"),
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


BEAMS_EXTENSION = "BEAMS"


class CubeFile:
    """A FITS cube written one plane at a time (astropy's StreamingHDU): never more than a plane in memory.

    Planes go in FREQ order; close() appends the BEAMS table (one row per plane: BMAJ, BMIN arcsec, BPA deg,
    CHAN, POL, with CASAMBM = T and no BMAJ, BMIN, BPA in the primary header, as CASA's exportfits writes it) and
    renames the file from its temporary name. A cube not closed (an error, a signal) leaves no file under the final name.
    """

    def __init__(self, path: Path, desc: ImageDescription, npix: int, spectral: SpectralAxis, unit: str = "JY/BEAM",
                 extra: dict | None = None) -> None:
        self.path, self.n_planes = Path(path), spectral.n
        self.partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        head = header(desc, npix, unit, {**(extra or {}), "CASAMBM": (True, "CASA multiple BEAMS table present")},
                      spectral)
        for key in ("BMAJ", "BMIN", "BPA"):  # CASA reads one beam for every plane where these are present
            del head[key]
        head.insert(0, ("SIMPLE", True))
        head.insert(1, ("BITPIX", -32))
        head.insert(2, ("NAXIS", 4))
        for axis, length in enumerate((npix, npix, spectral.n, 1), start=1):
            head.insert(2 + axis, (f"NAXIS{axis}", length))
        head.insert(7, ("EXTEND", True))  # the BEAMS extension follows
        self.partial.unlink(missing_ok=True)  # StreamingHDU appends to a file that exists
        self._stream = fits.StreamingHDU(self.partial, head)
        self._beams: list[Beam] = []

    def write(self, plane: np.ndarray, beam: Beam) -> None:
        """Append the next (npix, npix) plane [y, x] and its restoring beam."""
        self._stream.write(np.ascontiguousarray(plane, dtype=np.float32))
        self._beams.append(beam)

    def close(self, subtract_median: bool = False) -> Path:
        """Finish the data, append the BEAMS table and publish the file under its final name; subtract_median: first
        subtract from every pixel its median over the planes (subtract_spectral_median)."""
        self._stream.close()
        if len(self._beams) != self.n_planes:
            self.discard()
            raise ValueError(f"{self.path.name}: {len(self._beams)} planes written of {self.n_planes}")
        def arcsec(angle_rad: float) -> float:
            return 3600.0 * np.degrees(angle_rad)

        columns = [fits.Column("BMAJ", "1E", "arcsec", array=[arcsec(b.major_rad) for b in self._beams]),
                   fits.Column("BMIN", "1E", "arcsec", array=[arcsec(b.minor_rad) for b in self._beams]),
                   fits.Column("BPA", "1E", "deg", array=[np.degrees(b.pa_rad) for b in self._beams]),
                   fits.Column("CHAN", "1J", array=np.arange(self.n_planes, dtype=np.int32)),
                   fits.Column("POL", "1J", array=np.zeros(self.n_planes, dtype=np.int32))]
        table = fits.BinTableHDU.from_columns(columns, name=BEAMS_EXTENSION)
        table.header["EXTVER"] = 1
        table.header["NCHAN"] = self.n_planes
        table.header["NPOL"] = 1
        try:
            if subtract_median:
                subtract_spectral_median(self.partial)
            fits.append(self.partial, table.data, table.header)
            self.partial.rename(self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Remove what was written (the cube is not published)."""
        with contextlib.suppress(OSError, ValueError):
            self._stream.close()
        self.partial.unlink(missing_ok=True)


MEDIAN_CHUNK_BYTES = 256 * 2**20  # the cube's rows read at once by subtract_spectral_median


def subtract_spectral_median(path: Path, chunk_bytes: int = MEDIAN_CHUNK_BYTES) -> None:
    """Subtract from each pixel of the (1, n_planes, ny, nx) primary image of the FITS file at `path`, in place, its
    median over the planes (NaN planes ignored): an order-0 image-plane baseline, robust while a pixel's line
    occupies fewer than half the planes. Reads chunk_bytes of rows of every plane at a time (memory-mapped)."""
    with fits.open(path) as hdul:
        offset, shape = hdul.fileinfo(0)["datLoc"], hdul[0].shape
    cube = np.memmap(path, dtype=">f4", mode="r+", offset=offset, shape=shape[-3:])
    rows = max(1, chunk_bytes // (shape[-3] * shape[-1] * 4))
    for y in range(0, shape[-2], rows):
        block = np.asarray(cube[:, y:y + rows], dtype=np.float32)
        cube[:, y:y + rows] = block - np.nanmedian(block, axis=0)
    cube.flush()
    del cube
