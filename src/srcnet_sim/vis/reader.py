"""MeasurementSet metadata reader (python-casacore): the subtables, and one pass over the main table's times.

One reader for imaging (imaging.msdata) and for the ObsCore records of the products (products.obscore).
Holds no science. A path that is not a MeasurementSet is a UserInputError naming "MS".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore.tables import table

from srcnet_sim.errors import UserInputError
from srcnet_sim.vis.observatory import read_array_name

MAIN_CHUNK_ROWS = 1_000_000  # rows of TIME, INTERVAL and UVW read at once: memory does not grow with the MS


@dataclass(frozen=True)
class MSMetadata:
    """What the subtables of an MS say (first spectral window, first field).

    Attributes:
        freq_hz: (n_chan,) float64 channel centres, Hz (SPECTRAL_WINDOW CHAN_FREQ).
        channel_width_hz: (n_chan,) float64 |CHAN_WIDTH|, Hz.
        phase_centre_rad: J2000 (ra, dec) of the field (FIELD PHASE_DIR), rad.
        corr_types: casacore Stokes codes of the correlations (POLARIZATION CORR_TYPE): XX=9 .. YY=12, I=1.
        telescope_name: the array's name: OBSERVATION ARRAY_NAME when written, else TELESCOPE_NAME; "" when none.
    """

    freq_hz: np.ndarray
    channel_width_hz: np.ndarray
    phase_centre_rad: tuple[float, float]
    corr_types: list[int]
    telescope_name: str


@dataclass(frozen=True)
class MainTableScan:
    """One pass over the main table's TIME, INTERVAL and UVW.

    Attributes:
        start_s, end_s: first TIME - INTERVAL/2 and last TIME + INTERVAL/2, MJD seconds UTC.
        longest_uv_m: longest projected (u, v) baseline of all rows, metres.
        sample_intervals_s: {TIME: INTERVAL} of each distinct time sample, seconds.
    """

    start_s: float
    end_s: float
    longest_uv_m: float
    sample_intervals_s: dict[float, float]


def open_table(path: Path, name: str = "") -> table:
    """The main table of the MS at `path` (or its subtable `name`), read-only."""
    try:
        return table(f"{path}/{name}" if name else str(path), readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserInputError("MS", f"{path} is not a MeasurementSet ({'no ' + name + ' table' if name else 'no table'})") from exc


def read_metadata(path: Path) -> MSMetadata:
    """Frequencies, phase centre, correlations and telescope of the MS at `path`."""
    with open_table(path, "POLARIZATION") as pol:
        corr_types = [int(c) for c in pol.getcol("CORR_TYPE")[0]]
    with open_table(path, "SPECTRAL_WINDOW") as spw:
        freq_hz = np.asarray(spw.getcol("CHAN_FREQ")[0], dtype=np.float64)
        channel_width_hz = np.abs(np.asarray(spw.getcol("CHAN_WIDTH")[0], dtype=np.float64))
    with open_table(path, "FIELD") as field:
        ra, dec = field.getcol("PHASE_DIR")[0, 0]
    with open_table(path, "OBSERVATION") as obs:
        telescope_name = read_array_name(obs)
    return MSMetadata(freq_hz=freq_hz, channel_width_hz=channel_width_hz, phase_centre_rad=(float(ra), float(dec)),
                      corr_types=corr_types, telescope_name=telescope_name)


class MainTableScanner:
    """A MainTableScan accumulated chunk by chunk, in row order, by whoever reads the main table (the sidecar's
    scan here, or the imager's one pass: imaging.msdata), so that an MS is read once for both."""

    def __init__(self) -> None:
        self.start, self.end, self.longest, self.samples = np.inf, -np.inf, 0.0, {}

    def add(self, times: np.ndarray, intervals: np.ndarray, uvw: np.ndarray) -> None:
        """One chunk of rows: (n,) TIME and INTERVAL, s; (n, 3) UVW, m."""
        self.start = min(self.start, float((times - intervals / 2).min()))
        self.end = max(self.end, float((times + intervals / 2).max()))
        self.longest = max(self.longest, float(np.hypot(uvw[:, 0], uvw[:, 1]).max()))
        unique, first = np.unique(times, return_index=True)
        self.samples.update(zip(unique.tolist(), intervals[first].tolist(), strict=True))

    def result(self) -> MainTableScan:
        return MainTableScan(start_s=self.start, end_s=self.end, longest_uv_m=self.longest,
                             sample_intervals_s=self.samples)


def scan_main_table(path: Path, chunk_rows: int = MAIN_CHUNK_ROWS) -> MainTableScan:
    """Time range, longest (u, v) and the time samples of the MS at `path`, a chunk of rows at a time."""
    scanner = MainTableScanner()
    with open_table(path) as main:
        for row in range(0, main.nrows(), chunk_rows):
            n = min(chunk_rows, main.nrows() - row)
            scanner.add(main.getcol("TIME", startrow=row, nrow=n), main.getcol("INTERVAL", startrow=row, nrow=n),
                        main.getcol("UVW", startrow=row, nrow=n))
    return scanner.result()
