"""Read Stokes I visibilities for imaging from any MeasurementSet (python-casacore), validating as it goes.

`MeasurementSetSource` reads the main table in chunks of rows, so that imaging memory does not grow
with the length of the observation; `read_visibilities` reads it all at once (one chunk).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore.tables import table

from srcnet_sim.constants import SPEED_OF_LIGHT_M_S
from srcnet_sim.errors import UserInputError
from srcnet_sim.vis.reader import MainTableScanner, open_table, read_metadata
from srcnet_sim.sizing import CHUNK_SAMPLES  # rows x channels read at once

# casacore Stokes codes: I=1, RR=5, LL=8, XX=9, YY=12.
STOKES_I_PAIRS = {(9, 12): "XX+YY", (5, 8): "RR+LL"}
STOKES_I = 1
_TABLE_LOCK = threading.Lock()  # casacore's tables are not thread-safe: threads (a cube's planes) read one at a time


@dataclass(frozen=True)
class Visibilities:
    """Stokes I visibilities of one field and spectral window (all of an MS, or a chunk of its rows).

    Attributes:
        uvw_m: (n_row, 3) float64 metres (CASA convention).
        freq_hz: (n_chan,) channel centres.
        vis: (n_row, n_chan) complex64 Stokes I, Jy.
        weight: (n_row, n_chan) float32 weight of Stokes I; 0 where flagged.
        phase_centre_rad: J2000 (ra, dec).
        time_range_s: (start, end) of the data: first TIME - INTERVAL/2, last TIME + INTERVAL/2, MJD seconds UTC.
        telescope_name: the array name from OBSERVATION (ARRAY_NAME, else TELESCOPE_NAME).
        channel_width_hz: (n_chan,) widths.
    """

    uvw_m: np.ndarray
    freq_hz: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    phase_centre_rad: tuple[float, float]
    time_range_s: tuple[float, float]
    telescope_name: str
    channel_width_hz: np.ndarray

    def chunks(self) -> Iterator["Visibilities"]:
        """The data as chunks of rows: here, one chunk."""
        yield self

    @property
    def max_uvw_wavelengths(self) -> float:
        """Largest |uvw| among unflagged rows at the highest frequency: 1 / it is WSClean's theoretical beam."""
        used = np.any(self.weight > 0, axis=1)
        return float(np.linalg.norm(self.uvw_m[used], axis=1).max() * self.freq_hz.max() / SPEED_OF_LIGHT_M_S)

    @property
    def longest_baseline_wavelengths(self) -> float:
        """Longest projected (u, v) baseline among unflagged rows, in wavelengths at the highest frequency."""
        used = np.any(self.weight > 0, axis=1)
        uv = np.hypot(self.uvw_m[used, 0], self.uvw_m[used, 1])
        return float(uv.max() * self.freq_hz.max() / SPEED_OF_LIGHT_M_S) if uv.size else 0.0


def _stokes_i(data: np.ndarray, flag: np.ndarray, weight: np.ndarray, corr_types: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(n_row, n_chan) Stokes I and its weight (0 where flagged) from (n_row, n_chan, n_corr) arrays.

    Stokes I = (XX + YY) / 2 (or (RR + LL) / 2); a sample is used only where both are unflagged, with
    weight 4 / (1/w_XX + 1/w_YY), the inverse variance of the mean.
    """
    if STOKES_I in corr_types:
        i = corr_types.index(STOKES_I)
        vis, w, bad = data[..., i], weight[..., i], flag[..., i]
    else:
        pair = next(p for p in STOKES_I_PAIRS if p[0] in corr_types and p[1] in corr_types)
        a, b = corr_types.index(pair[0]), corr_types.index(pair[1])
        vis = 0.5 * (data[..., a] + data[..., b])
        wa, wb = weight[..., a], weight[..., b]
        with np.errstate(divide="ignore"):
            w = np.where((wa > 0) & (wb > 0), 4.0 / (1.0 / np.where(wa > 0, wa, 1) + 1.0 / np.where(wb > 0, wb, 1)), 0.0)
        bad = flag[..., a] | flag[..., b]
    w = np.where(bad | ~np.isfinite(vis), 0.0, w).astype(np.float32)
    return np.ascontiguousarray(np.where(w > 0, vis, 0), dtype=np.complex64), np.ascontiguousarray(w)


class MeasurementSetSource:
    """A MeasurementSet read for imaging in chunks of rows; metadata and validation up front.

    Raises UserInputError for a path that is not an MS, no DATA column, no XX/YY, RR/LL or I
    correlations, more than one spectral window or field, or all data flagged.
    """

    def __init__(self, path: Path, chunk_samples: int = CHUNK_SAMPLES) -> None:
        self.path = path = Path(path)
        if not (path / "table.dat").is_file():
            raise UserInputError("MS", f"{path} is not a MeasurementSet (no table.dat)")
        with open_table(path) as main:
            if "DATA" not in main.colnames():
                raise UserInputError("MS", f"{path} has no DATA column")
            self.n_rows = main.nrows()
            if self.n_rows == 0:
                raise UserInputError("MS", f"{path} has no rows")
            if len(np.unique(main.getcol("DATA_DESC_ID"))) > 1 or len(np.unique(main.getcol("FIELD_ID"))) > 1:
                raise UserInputError("MS", f"{path} holds several spectral windows or fields; image one at a time")
            self._weight_column = "WEIGHT_SPECTRUM" if ("WEIGHT_SPECTRUM" in main.colnames()
                                                        and main.iscelldefined("WEIGHT_SPECTRUM", 0)) else "WEIGHT"
        meta = read_metadata(path)
        self.corr_types = meta.corr_types
        if STOKES_I not in self.corr_types and not any(a in self.corr_types and b in self.corr_types for a, b in STOKES_I_PAIRS):
            raise UserInputError("MS", f"{path} has neither XX/YY, RR/LL nor I correlations (CORR_TYPE {self.corr_types})")
        self.freq_hz, self.channel_width_hz = meta.freq_hz, meta.channel_width_hz
        self.phase_centre_rad, self.telescope_name = meta.phase_centre_rad, meta.telescope_name
        self.rows_per_chunk = max(1, chunk_samples // len(self.freq_hz))
        self._scan()

    def _scan(self) -> None:
        """One pass for what imaging needs up front (time range, longest baselines, any unflagged data) and for the
        MS's ObsCore record (`main_scan`, vis.reader.MainTableScan: staging reuses it instead of reading again)."""
        with open_table(self.path) as main:
            scan_source(self, lambda row, n: (self.read_rows(main, row, n), main.getcol("TIME", row, n),
                                               main.getcol("INTERVAL", row, n)))

    def read_rows(self, main: table, row: int, n: int, channels: tuple[int, int] | None = None) -> Visibilities:
        """Rows [row, row + n) of the open main table as Stokes I; channels: (start, stop) to read only those."""
        def column(name: str) -> np.ndarray:
            if channels is None:
                return main.getcol(name, row, n)
            return main.getcolslice(name, [channels[0], 0], [channels[1] - 1, len(self.corr_types) - 1], [], row, n)

        selected = slice(None) if channels is None else slice(*channels)
        flag = column("FLAG") | main.getcol("FLAG_ROW", row, n)[:, None, None]
        data = column("DATA")
        weight = column(self._weight_column) if self._weight_column == "WEIGHT_SPECTRUM" else main.getcol("WEIGHT", row, n)
        if weight.ndim == 2:
            weight = np.broadcast_to(weight[:, None, :], data.shape)
        vis, w = _stokes_i(data, flag, weight, self.corr_types)
        return Visibilities(uvw_m=np.ascontiguousarray(main.getcol("UVW", row, n), dtype=np.float64),
                            freq_hz=self.freq_hz[selected], vis=vis, weight=w, phase_centre_rad=self.phase_centre_rad,
                            time_range_s=(0.0, 0.0), telescope_name=self.telescope_name,
                            channel_width_hz=self.channel_width_hz[selected])

    def read_channels(self, row: int, n: int, channels: tuple[int, int]) -> Visibilities:
        """Rows [row, row + n) of channels [start, stop) as Stokes I; any thread may call it (one reads at a time)."""
        with _TABLE_LOCK, open_table(self.path) as main:
            return self.read_rows(main, row, n, channels)

    def chunks(self) -> Iterator[Visibilities]:
        """The Stokes I data, a chunk of rows at a time (read again on every pass unless it is one chunk)."""
        if self._single is not None:
            yield self._single
            return
        with open_table(self.path) as main:
            for row in range(0, self.n_rows, self.rows_per_chunk):
                yield self.read_rows(main, row, min(self.rows_per_chunk, self.n_rows - row))


def scan_source(source, read: Callable[[int, int], tuple[Visibilities, np.ndarray, np.ndarray]]) -> None:
    """One pass over a source's rows, a chunk at a time, for what imaging needs up front (time range, longest
    baselines, any unflagged data) and for its ObsCore record: sets source.main_scan (vis.reader.MainTableScan),
    time_range_s, longest_baseline_wavelengths, max_uvw_wavelengths, and _single (the data when they are one chunk).
    read(row, n) gives the rows' Stokes I data and their (n,) TIME and INTERVAL (MJD seconds, s).
    Raises UserInputError ("MS") when every sample is flagged."""
    uv_max, uvw_max, any_used = 0.0, 0.0, False
    scanner = MainTableScanner()
    source._single = None
    for row in range(0, source.n_rows, source.rows_per_chunk):
        n = min(source.rows_per_chunk, source.n_rows - row)
        chunk, times, intervals = read(row, n)
        scanner.add(times, intervals, chunk.uvw_m)
        if n == source.n_rows:
            source._single = chunk  # it all fits in one chunk: keep it instead of reading it on every pass
        used = np.any(chunk.weight > 0, axis=1)
        if np.any(used):
            any_used = True
            uv_max = max(uv_max, float(np.hypot(chunk.uvw_m[used, 0], chunk.uvw_m[used, 1]).max()))
            uvw_max = max(uvw_max, float(np.linalg.norm(chunk.uvw_m[used], axis=1).max()))
    if not any_used:
        raise UserInputError("MS", f"{source.path}: all data are flagged (or have zero weight)")
    source.main_scan = scanner.result()
    source.time_range_s = (source.main_scan.start_s, source.main_scan.end_s)
    scale = source.freq_hz.max() / SPEED_OF_LIGHT_M_S
    source.longest_baseline_wavelengths = uv_max * scale
    source.max_uvw_wavelengths = uvw_max * scale


def read_visibilities(path: Path) -> Visibilities:
    """All of an MS's Stokes I data in memory (see MeasurementSetSource for the checks)."""
    source = MeasurementSetSource(path, chunk_samples=np.iinfo(np.int64).max)
    chunk = next(source.chunks())
    return Visibilities(uvw_m=chunk.uvw_m, freq_hz=chunk.freq_hz, vis=chunk.vis, weight=chunk.weight,
                        phase_centre_rad=source.phase_centre_rad, time_range_s=source.time_range_s,
                        telescope_name=source.telescope_name, channel_width_hz=source.channel_width_hz)
