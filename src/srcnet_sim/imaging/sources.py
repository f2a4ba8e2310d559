"""The imaging source of any visibilities on disk: a MeasurementSet v2 (imaging.msdata) or v4 (imaging.msv4data),
with one interface (metadata, main_scan, chunks(), read_channels())."""

from __future__ import annotations

import zipfile
from pathlib import Path

from srcnet_sim.imaging.msdata import MeasurementSetSource
from srcnet_sim.imaging.msv4data import ProcessingSetSource
from srcnet_sim.sizing import CHUNK_SAMPLES


def open_visibilities(path: Path, chunk_samples: int = CHUNK_SAMPLES) -> MeasurementSetSource | ProcessingSetSource:
    """The source of the visibilities at `path`, by what it holds: a zarr processing set (its directory, or its staged
    zip) is read as an MSv4, anything else as a CASA MS directory (whose checks name what is wrong)."""
    path = Path(path)
    if (path / "zarr.json").is_file() or (path.is_file() and zipfile.is_zipfile(path)):
        return ProcessingSetSource(path, chunk_samples)
    return MeasurementSetSource(path, chunk_samples)
