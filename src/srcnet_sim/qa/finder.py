"""Source finding in a restored image with PyBDSF (PyPI `bdsf`), the finder the MIGHTEE catalogue was made with."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim.errors import QAError

INSTALL_HINT = "pip install bdsf (or the package's qa extra: pip install 'srcnet-sim[qa]')"
# PyBDSF's defaults, stated: islands down to 3 sigma around peaks above 5 sigma of the local rms map.
THRESH_ISLAND = 3.0
THRESH_PIXEL = 5.0


@dataclass(frozen=True)
class Detections:
    """PyBDSF's source list: (n,) arrays, positions in degrees, fluxes in Jy (total) and Jy/beam (peak).

    catalogue: the source list PyBDSF wrote (FITS), or None when it found nothing.
    rms_jy: PyBDSF's clipped rms of the image, Jy/beam.
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    total_flux_jy: np.ndarray
    peak_flux_jy: np.ndarray
    catalogue: Path | None
    rms_jy: float


def import_bdsf():
    """The bdsf module, or QAError saying how to install it."""
    try:
        import bdsf
    except Exception as exc:  # ImportError, or a broken install failing on import
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QAError(f"--qa: PyBDSF cannot be imported ({message}); {INSTALL_HINT}") from exc
    return bdsf


def find_sources(image: Path, workdir: Path) -> Detections:
    """Run PyBDSF on a FITS image; its log and source list go to `workdir` (which must exist).

    Raises QAError (one line) when bdsf is missing or PyBDSF fails on the image.
    """
    bdsf = import_bdsf()
    local = workdir / Path(image).name
    if not local.exists():
        os.symlink(Path(image).resolve(), local)  # PyBDSF writes its log beside the image it reads
    catalogue = workdir / (local.stem + ".srl.fits")
    chatter = io.StringIO()  # PyBDSF's own log lines on stderr: the one-line QAError replaces them
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyBDSF's numpy warnings on odd images; its error says what happened
            result = bdsf.process_image(str(local), quiet=True, thresh_isl=THRESH_ISLAND, thresh_pix=THRESH_PIXEL)
            if result.nsrc > 0:
                result.write_catalog(outfile=str(catalogue), format="fits", catalog_type="srl", clobber=True)
    except Exception as exc:  # PyBDSF raises many types (RuntimeError, ValueError, its own)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QAError(f"--qa: PyBDSF failed on {Path(image).name}: {message}") from exc
    rms = float(getattr(result, "clipped_rms", np.nan))
    if result.nsrc == 0:
        empty = np.zeros(0)
        return Detections(empty, empty, empty, empty, None, rms)
    from astropy.table import Table

    table = Table.read(catalogue)
    column = lambda name: np.asarray(table[name], dtype=np.float64)  # noqa: E731
    return Detections(column("RA"), column("DEC"), column("Total_flux"), column("Peak_flux"), catalogue, rms)
