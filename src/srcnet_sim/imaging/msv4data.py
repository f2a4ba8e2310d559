"""Read Stokes I visibilities for imaging from a MeasurementSet v4 (an xradio processing set: a zarr store's
directory, or its staged zip read in place), with the interface of imaging.msdata.MeasurementSetSource.

Rows are the MSv2's: time-major, baselines within a time step (row = time index x n_baselines + baseline index),
so that imaging an MSv4 reads the same samples in the same order as imaging the MSv2 of the same run, and gives the
same images. Only the 'base' data group (VISIBILITY, FLAG, WEIGHT, UVW) of a processing set of one partition is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from srcnet_sim.errors import UserInputError
from srcnet_sim.imaging.msdata import Visibilities, _stokes_i, scan_source
from srcnet_sim.products.obscore import STOKES_LABELS
from srcnet_sim.sizing import CHUNK_SAMPLES

CORR_CODES = {label: code for code, label in STOKES_LABELS.items()}  # "XX" -> 9, ...
UNIX_TO_MJD_S = 3_506_716_800.0  # MJD seconds = unix seconds + this


class ProcessingSetSource:
    """An MSv4 read for imaging in chunks of rows; metadata and validation up front (see module docstring).

    Raises UserInputError ("MS") for a store without one visibility partition, without XX/YY, RR/LL or I, or with
    all data flagged; and when zarr is missing (the msv4 extra)."""

    def __init__(self, path: Path, chunk_samples: int = CHUNK_SAMPLES) -> None:
        try:
            import zarr
        except ImportError:
            raise UserInputError("MS", f"{path} is a MeasurementSet v4, read with zarr: pip install 'srcnet-sim[msv4]'") from None
        self.path = Path(path)
        self._store = zarr.storage.ZipStore(str(path), mode="r") if self.path.is_file() else str(path)
        self._lock = threading.Lock()  # a zip is one file handle: the planes of a cube read one at a time
        root = zarr.open_group(self._store, mode="r", zarr_format=3)
        partitions = [group for _, group in root.groups() if group.attrs.get("type") == "visibility"]
        if len(partitions) != 1:
            raise UserInputError("MS", f"{path} holds {len(partitions)} MSv4 visibility partitions; image one at a time")
        part = partitions[0]
        base = part.attrs["data_groups"]["base"]
        self._vis, self._flag = part[base["correlated_data"]], part[base["flag"]]
        self._weight, self._uvw = part[base["weight"]], part[base["uvw"]]
        self.corr_types = [CORR_CODES.get(str(p), 0) for p in part["polarization"][:]]
        if 1 not in self.corr_types and not ({9, 12} <= set(self.corr_types) or {5, 8} <= set(self.corr_types)):
            raise UserInputError("MS", f"{path} has neither XX/YY, RR/LL nor I correlations")
        frequency = part["frequency"]
        self.freq_hz = np.asarray(frequency[:], dtype=np.float64)
        self.channel_width_hz = np.full(len(self.freq_hz), abs(float(frequency.attrs["channel_width"]["data"])))
        time = part["time"]
        self._times_s = np.asarray(time[:], dtype=np.float64) + UNIX_TO_MJD_S
        self._interval_s = float(time.attrs["integration_time"]["data"])
        ra, dec = part[base["field_and_source"]]["FIELD_PHASE_CENTER_DIRECTION"][0]
        self.phase_centre_rad = (float(ra), float(dec))
        self.telescope_name = str(part["antenna_xds"].attrs.get("overall_telescope_name", ""))
        self.n_bl = self._vis.shape[1]
        self.n_rows = len(self._times_s) * self.n_bl
        self.rows_per_chunk = max(1, chunk_samples // len(self.freq_hz))
        scan_source(self, lambda row, n: (self._read(row, n, None), *self._row_times(row, n)))

    def _row_times(self, row: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(n,) TIME (MJD seconds) and INTERVAL (s) of rows [row, row + n)."""
        times = self._times_s[np.arange(row, row + n) // self.n_bl]
        return times, np.full(n, self._interval_s)

    def _read(self, row: int, n: int, channels: tuple[int, int] | None) -> Visibilities:
        """Rows [row, row + n) (channels [start, stop), default all) as Stokes I: the time steps holding them read
        whole, then cut to the rows."""
        t0, t1 = row // self.n_bl, -(-(row + n) // self.n_bl)
        chans = slice(None) if channels is None else slice(*channels)
        skip = row - t0 * self.n_bl

        def rows(array, *index) -> np.ndarray:
            with self._lock:
                values = np.asarray(array[(slice(t0, t1), slice(None), *index)])
            return values.reshape(-1, *values.shape[2:])[skip:skip + n]

        data, flag, weight = (rows(a, chans, slice(None)) for a in (self._vis, self._flag, self._weight))
        vis, w = _stokes_i(data, flag, weight, self.corr_types)
        return Visibilities(uvw_m=np.ascontiguousarray(rows(self._uvw, slice(None)), dtype=np.float64),
                            freq_hz=self.freq_hz[chans], vis=vis, weight=w, phase_centre_rad=self.phase_centre_rad,
                            time_range_s=(0.0, 0.0), telescope_name=self.telescope_name,
                            channel_width_hz=self.channel_width_hz[chans])

    def read_channels(self, row: int, n: int, channels: tuple[int, int]) -> Visibilities:
        """Rows [row, row + n) of channels [start, stop) as Stokes I; any thread may call it."""
        return self._read(row, n, channels)

    def chunks(self) -> Iterator[Visibilities]:
        """The Stokes I data, a chunk of rows at a time (read again on every pass unless it is one chunk)."""
        if self._single is not None:
            yield self._single
            return
        for row in range(0, self.n_rows, self.rows_per_chunk):
            yield self._read(row, min(self.rows_per_chunk, self.n_rows - row), None)
