"""MeasurementSet v2 writer (python-casacore): subtables once, main-table rows a block of time steps at a time.

Holds no science: it receives times, UVW, visibilities and weights as arrays and writes them.

Storage layout of the main table (all standard casacore storage managers, as CASA itself writes them):
DATA, FLAG, WEIGHT, SIGMA and UVW have fixed cell shapes in TiledColumnStMan hypercubes whose tiles hold
whole rows (all channels and correlations of as many rows as fit in about TILE_BYTES; optionally a block of
channels, see MeasurementSetWriter); FLAG is stored as bits.
Columns constant over a time step (TIME, INTERVAL, SCAN_NUMBER, ...) are in an IncrementalStMan, which
stores a value only where it changes; ANTENNA1/2 (and the empty FLAG_CATEGORY) in a StandardStMan. A block
of several dumps is one putcol per column (see append_block).

Opened with `direct_data` (the run's writer, vis.writer_process), DATA bypasses casacore's copy and the page cache
where its tiles hold whole rows (all channels): casacore adds the rows and zero-fills their new tiles in the page
cache at its flush; the values are then written over them straight to the column's file (fs.direct_write, which
drops those zero pages unwritten). The file's bytes are those casacore writes (tested).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore.tables import default_ms, makearrcoldesc, makescacoldesc, maketabdesc, table

from srcnet_sim.vis.observatory import ARRAY_NAME_COLUMN, ms_telescope_name
from srcnet_sim.fs.direct_write import DirectFile
from srcnet_sim.fs.durable import fsync_path
from srcnet_sim.instrument import Telescope

# casacore Stokes enumeration: XX=9, XY=10, YX=11, YY=12.
LINEAR_CORR_TYPES = (9, 10, 11, 12)
LINEAR_CORR_PRODUCTS = ((0, 0), (0, 1), (1, 0), (1, 1))
FREQ_FRAME_TOPO = 5
TILE_BYTES = 1 << 20  # a tile of DATA (and of each other tiled column) is about 1 MiB: large, sequential writes
BUCKET_BYTES = 1 << 16  # buckets of the incremental and standard storage managers
# Main-table columns whose value is the same for every row of a time step (or of the whole MS).
INCREMENTAL_COLUMNS = ("TIME", "TIME_CENTROID", "INTERVAL", "EXPOSURE", "SCAN_NUMBER", "STATE_ID", "PROCESSOR_ID",
                       "ARRAY_ID", "DATA_DESC_ID", "FEED1", "FEED2", "FIELD_ID", "OBSERVATION_ID", "FLAG_ROW")
STANDARD_COLUMNS = ("ANTENNA1", "ANTENNA2", "FLAG_CATEGORY")
# Incremental columns with one value for the whole MS: rows added after it carry it (the incremental storage
# manager gives a new row the last row's value), so put_rows writes them only where the row before differs.
RUN_CONSTANT_COLUMNS = ("INTERVAL", "EXPOSURE", "SCAN_NUMBER", "STATE_ID", "PROCESSOR_ID")


@dataclass(frozen=True)
class MSDescription:
    """What the subtables describe.

    Attributes:
        telescope: dishes and site.
        freq_hz: (n_chan,) channel centres; channel_width_hz the width of each.
        phase_centre_rad: J2000 (ra, dec).
        field_name: FIELD NAME.
        time_range_s: (start, end) of the observation, MJD seconds UTC.
        history: HISTORY messages (settings, seed).
        application: HISTORY APPLICATION.
    """

    telescope: Telescope
    freq_hz: np.ndarray
    channel_width_hz: float
    phase_centre_rad: tuple[float, float]
    field_name: str
    time_range_s: tuple[float, float]
    history: tuple[str, ...]
    application: str


class MeasurementSetWriter:
    """Create an MS at `path` and append rows in time order.

    Use as a context manager; `append` writes the rows of one time step, `append_block` those of several
    consecutive steps at once (the same rows, fewer and larger writes). DATA is complex64.
    """

    def __init__(self, path: Path, description: MSDescription, tile_channels: int | None = None,
                 model_data: bool = False) -> None:
        """tile_channels: channels per DATA and FLAG tile (default all). Writers that write a block of channels
        at a time pass the block's channel count, so that each block fills whole tiles (no read-modify-write).

        model_data: the main table has a MODEL_DATA column (stored as DATA), written from put_rows's `model`.

        The main table starts with no rows: `put_rows` adds them as the blocks come, in time order, so that each
        tile is written once, with its values. (Rows allocated at once cost a second write of the whole table:
        casacore's first flush fills every new bucket with zeros.)"""
        self.path = Path(path)
        self.description = description
        n_chan, n_corr = len(description.freq_hz), len(LINEAR_CORR_TYPES)
        self._main = default_ms(str(self.path), main_table_description(n_chan, n_corr, model_data),
                                main_table_layout(n_chan, n_corr, tile_channels, model_data))
        self._n_rows = 0
        self._weights: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # sigma given, SIGMA rows, WEIGHT rows
        self._direct: DirectFile | None = None
        self._write_subtables()

    def __enter__(self) -> "MeasurementSetWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._main is not None:
            self._main.flush()
            self._main.close()
            self._main = None
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @classmethod
    def reopen(cls, path: Path, direct_data: bool = False) -> "MeasurementSetWriter":
        """Open an MS this writer made before (a resumed run) to write its rows with `put_rows`; subtables kept.
        Its n_rows are those of its last flush. direct_data: DATA written past casacore where its layout allows
        (see the module docstring)."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.description = None
        writer._main = table(str(writer.path), readonly=False, ack=False)
        writer._n_rows = writer._main.nrows()
        writer._weights = None
        writer._direct = None
        if direct_data and _rows_are_contiguous(writer._main, "DATA"):
            writer._direct = DirectFile(writer.path / f"table.f{writer._main.getdminfo('DATA')['SEQNR']}_TSM0")
        return writer

    def flush(self) -> None:
        """Write casacore's buffers to the files, then fsync the main table's files (a resumable state on disk)."""
        self._main.flush()
        for path in self.path.iterdir():
            if path.is_file():
                fsync_path(path)

    def put_rows(
        self,
        start_row: int,
        times_s: np.ndarray,
        interval_s: float,
        ant1: np.ndarray,
        ant2: np.ndarray,
        uvw_m: np.ndarray,
        data: np.ndarray,
        sigma: np.ndarray,
        chan_start: int = 0,
        flag: np.ndarray | None = None,
        model: np.ndarray | None = None,
    ) -> None:
        """Write n_t consecutive time steps into the rows from `start_row` (rewriting is idempotent), adding the rows
        the table does not have yet: DATA and FLAG of channels [chan_start, chan_start + n_chan_block), and, with the
        block that starts at channel 0, the columns of the rows themselves (time, baseline, UVW, weights), which do
        not depend on the channel. Blocks come in time order (a later start leaves rows of zeros between, written
        twice).

        Args:
            start_row: first row written (rows are time-major, baselines within a time step).
            times_s: (n_t,) sample centres, MJD seconds UTC.
            interval_s: sample length, seconds.
            ant1, ant2: (n_bl,) antenna indices, the same for every time step.
            uvw_m: (n_t, n_bl, 3) metres.
            data: (n_t, n_bl, n_chan_block, n_corr) visibilities, Jy (complex64 is written without a copy).
            sigma: (n_bl,) noise rms of one real component per correlation, Jy (WEIGHT = 1/sigma^2).
            chan_start: first channel of `data`.
            flag: (n_t, n_bl, n_chan_block, n_corr) bool, default all False.
            model: MODEL_DATA of the same shape as data (an MS made with model_data), or None.
        """
        times_s = np.asarray(times_s, dtype=np.float64)
        n_t, n_bl = len(times_s), len(ant1)
        n_chan, n_corr = data.shape[2:]
        if data.shape[:2] != (n_t, n_bl) or np.shape(uvw_m) != (n_t, n_bl, 3):
            raise ValueError(f"block of {n_t} steps x {n_bl} baselines: data {data.shape}, uvw {np.shape(uvw_m)}")
        n = n_t * n_bl
        main = self._main
        rows_before = main.nrows()
        if start_row + n > rows_before:
            main.addrows(start_row + n - rows_before)
        if chan_start == 0:
            for name, values in self._row_columns(times_s, interval_s, ant1, ant2, uvw_m, sigma, n_corr).items():
                if (name in RUN_CONSTANT_COLUMNS and 0 < start_row and start_row >= rows_before
                        and main.getcell(name, start_row - 1) == values[0]):
                    continue  # all rows new: they carry it already
                main.putcol(name, values, startrow=start_row, nrow=n)
        cells = {"DATA": np.ascontiguousarray(data, dtype=np.complex64).reshape(n, n_chan, n_corr)}
        if flag is not None:
            cells["FLAG"] = np.ascontiguousarray(flag, dtype=bool).reshape(n, n_chan, n_corr)
        elif start_row < rows_before:  # rows written before: their flags set False again (new tiles are False)
            cells["FLAG"] = np.zeros((n, n_chan, n_corr), dtype=bool)
        if model is not None:
            cells["MODEL_DATA"] = np.ascontiguousarray(model, dtype=np.complex64).reshape(n, n_chan, n_corr)
        all_channels = chan_start == 0 and n_chan == int(main.getcoldesc("DATA")["shape"][0])
        direct = cells.pop("DATA") if self._direct is not None and all_channels else None
        for name, values in cells.items():
            if all_channels:
                main.putcol(name, values, startrow=start_row, nrow=n)
            else:
                main.putcolslice(name, values, blc=[chan_start, 0], trc=[chan_start + n_chan - 1, n_corr - 1],
                                 startrow=start_row, nrow=n)
        if direct is not None:  # casacore's zero-filled new tiles first, then the values over them
            main.flush()
            self._direct.write(start_row * direct[0].nbytes, direct)
        self._n_rows = max(self._n_rows, start_row + n)

    def append(
        self,
        time_s: float,
        interval_s: float,
        ant1: np.ndarray,
        ant2: np.ndarray,
        uvw_m: np.ndarray,
        data: np.ndarray,
        sigma: np.ndarray,
        flag: np.ndarray | None = None,
    ) -> None:
        """Append one time step.

        Args:
            time_s: sample centre, MJD seconds UTC.
            interval_s: sample length, seconds.
            ant1, ant2: (n_bl,) antenna indices.
            uvw_m: (n_bl, 3) metres.
            data: (n_bl, n_chan, n_corr) visibilities, Jy.
            sigma: (n_bl,) noise rms of one real component per correlation, Jy (WEIGHT = 1/sigma^2).
            flag: (n_bl, n_chan, n_corr) bool, default all False.
        """
        self.append_block(np.array([time_s]), interval_s, ant1, ant2, np.asarray(uvw_m)[None], np.asarray(data)[None],
                          sigma, None if flag is None else np.asarray(flag)[None])

    def append_block(
        self,
        times_s: np.ndarray,
        interval_s: float,
        ant1: np.ndarray,
        ant2: np.ndarray,
        uvw_m: np.ndarray,
        data: np.ndarray,
        sigma: np.ndarray,
        flag: np.ndarray | None = None,
    ) -> None:
        """Append n_t consecutive time steps of all channels after the last row; args as `put_rows`."""
        self.put_rows(self._main.nrows(), times_s, interval_s, ant1, ant2, uvw_m, data, sigma, flag=flag)

    def _row_columns(self, times_s: np.ndarray, interval_s: float, ant1: np.ndarray, ant2: np.ndarray,
                     uvw_m: np.ndarray, sigma: np.ndarray, n_corr: int) -> dict[str, np.ndarray]:
        """The columns of n_t x n_bl rows that do not depend on the channel, by column name."""
        n_t, n_bl = len(times_s), len(ant1)
        n = n_t * n_bl
        sigma_rows, weight_rows = self._weight_rows(sigma, n_corr)
        time_rows = np.repeat(times_s, n_bl)
        interval_rows = np.full(n, float(interval_s))
        return {
            "TIME": time_rows,
            "TIME_CENTROID": time_rows,
            "INTERVAL": interval_rows,
            "EXPOSURE": interval_rows,
            "ANTENNA1": np.tile(np.asarray(ant1, dtype=np.int32), n_t),
            "ANTENNA2": np.tile(np.asarray(ant2, dtype=np.int32), n_t),
            "UVW": np.ascontiguousarray(uvw_m, dtype=np.float64).reshape(n, 3),
            "SIGMA": np.tile(sigma_rows, (n_t, 1)),
            "WEIGHT": np.tile(weight_rows, (n_t, 1)),
            "SCAN_NUMBER": np.ones(n, dtype=np.int32),
            "STATE_ID": np.full(n, -1, dtype=np.int32),
            "PROCESSOR_ID": np.full(n, -1, dtype=np.int32),
        }

    def _weight_rows(self, sigma: np.ndarray, n_corr: int) -> tuple[np.ndarray, np.ndarray]:
        """(n_bl, n_corr) float32 SIGMA and WEIGHT = 1/SIGMA^2 rows, computed once while sigma stays the same."""
        sigma = np.asarray(sigma)
        cached = self._weights
        if cached is None or cached[1].shape[1] != n_corr or not np.array_equal(cached[0], sigma):
            sigma_rows = np.repeat(sigma.astype(np.float32)[:, None], n_corr, axis=1)
            cached = self._weights = (sigma.copy(), sigma_rows, 1.0 / sigma_rows**2)
        return cached[1], cached[2]

    # ---- subtables ----
    def _subtable(self, name: str, n_rows: int) -> table:
        sub = table(f"{self.path}/{name}", readonly=False, ack=False)
        if n_rows:
            sub.addrows(n_rows)
        return sub

    def _write_subtables(self) -> None:
        d = self.description
        tel = d.telescope
        n_ant, n_chan = tel.n_dish, len(d.freq_hz)
        with self._subtable("ANTENNA", n_ant) as ant:
            ant.putcol("NAME", list(tel.station_names))
            ant.putcol("STATION", list(tel.station_names))
            ant.putcol("TYPE", ["GROUND-BASED"] * n_ant)
            ant.putcol("MOUNT", ["ALT-AZ"] * n_ant)
            ant.putcol("POSITION", tel.itrf_m)
            ant.putcol("OFFSET", np.zeros((n_ant, 3)))
            ant.putcol("DISH_DIAMETER", tel.diameters_m)
        with self._subtable("FEED", n_ant) as feed:
            feed.putcol("ANTENNA_ID", np.arange(n_ant, dtype=np.int32))
            feed.putcol("FEED_ID", np.zeros(n_ant, dtype=np.int32))
            feed.putcol("SPECTRAL_WINDOW_ID", np.full(n_ant, -1, dtype=np.int32))
            feed.putcol("TIME", np.full(n_ant, 0.5 * sum(d.time_range_s)))
            feed.putcol("INTERVAL", np.full(n_ant, d.time_range_s[1] - d.time_range_s[0]))
            feed.putcol("NUM_RECEPTORS", np.full(n_ant, 2, dtype=np.int32))
            feed.putcol("BEAM_ID", np.full(n_ant, -1, dtype=np.int32))
            feed.putcol("BEAM_OFFSET", np.zeros((n_ant, 2, 2)))
            feed.putcol("POLARIZATION_TYPE", np.array([["X", "Y"]] * n_ant))
            feed.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (n_ant, 1, 1)))
            feed.putcol("POSITION", np.zeros((n_ant, 3)))
            feed.putcol("RECEPTOR_ANGLE", np.tile([0.0, np.pi / 2], (n_ant, 1)))
        direction = np.array([[d.phase_centre_rad[0], d.phase_centre_rad[1]]])
        with self._subtable("FIELD", 1) as field:
            field.putcol("NAME", [d.field_name])
            field.putcol("CODE", [""])
            field.putcol("TIME", np.array([d.time_range_s[0]]))
            field.putcol("NUM_POLY", np.zeros(1, dtype=np.int32))
            for column in ("DELAY_DIR", "PHASE_DIR", "REFERENCE_DIR"):
                field.putcol(column, direction[None])
            field.putcol("SOURCE_ID", np.full(1, -1, dtype=np.int32))
        widths = np.full(n_chan, d.channel_width_hz)
        with self._subtable("SPECTRAL_WINDOW", 1) as spw:
            spw.putcol("NUM_CHAN", np.array([n_chan], dtype=np.int32))
            spw.putcol("NAME", ["SPW0"])
            spw.putcol("REF_FREQUENCY", np.array([d.freq_hz[0]]))
            spw.putcol("CHAN_FREQ", d.freq_hz[None, :])
            for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
                spw.putcol(column, widths[None, :])
            spw.putcol("MEAS_FREQ_REF", np.array([FREQ_FRAME_TOPO], dtype=np.int32))
            spw.putcol("TOTAL_BANDWIDTH", np.array([widths.sum()]))
            spw.putcol("NET_SIDEBAND", np.ones(1, dtype=np.int32))
        with self._subtable("POLARIZATION", 1) as pol:
            pol.putcol("NUM_CORR", np.array([len(LINEAR_CORR_TYPES)], dtype=np.int32))
            pol.putcol("CORR_TYPE", np.array([LINEAR_CORR_TYPES], dtype=np.int32))
            pol.putcol("CORR_PRODUCT", np.array([LINEAR_CORR_PRODUCTS], dtype=np.int32))
        with self._subtable("DATA_DESCRIPTION", 1) as dd:
            dd.putcol("SPECTRAL_WINDOW_ID", np.zeros(1, dtype=np.int32))
            dd.putcol("POLARIZATION_ID", np.zeros(1, dtype=np.int32))
        with self._subtable("OBSERVATION", 1) as obs:
            # CASA looks the observatory position up by TELESCOPE_NAME; the array's own name goes beside it.
            obs.putcol("TELESCOPE_NAME", [ms_telescope_name(tel.name, tel.site)])
            obs.addcols(makescacoldesc(ARRAY_NAME_COLUMN, "", valuetype="string"))
            obs.putcol(ARRAY_NAME_COLUMN, [tel.name])
            obs.putcol("TIME_RANGE", np.array([d.time_range_s]))
            obs.putcol("OBSERVER", ["srcnet-sim"])
            obs.putcol("PROJECT", [d.field_name])
            obs.putcol("RELEASE_DATE", np.array([d.time_range_s[1]]))
            # Array reference point (ITRF, m): not in the MS v2 standard, read by pyuvdata.
            obs.addcols(makearrcoldesc("TELESCOPE_LOCATION", 0.0, valuetype="double", shape=[3], options=5))
            obs.putcol("TELESCOPE_LOCATION", tel.site.itrf_m()[None, :])
        n_hist = len(d.history)
        with self._subtable("HISTORY", n_hist) as hist:
            if n_hist:
                hist.putcol("TIME", np.full(n_hist, d.time_range_s[0]))
                hist.putcol("OBSERVATION_ID", np.zeros(n_hist, dtype=np.int32))
                hist.putcol("MESSAGE", list(d.history))
                hist.putcol("PRIORITY", ["NORMAL"] * n_hist)
                hist.putcol("ORIGIN", ["srcnet-sim"] * n_hist)
                hist.putcol("OBJECT_ID", np.zeros(n_hist, dtype=np.int32))
                hist.putcol("APPLICATION", [d.application] * n_hist)


def _rows_are_contiguous(main: table, column: str) -> bool:
    """Whether row r of `column` is bytes [r, r + 1) x its cell's size of its storage manager's file, in this
    machine's byte order: a TiledColumnStMan whose tiles hold whole cells, in a table of native endianness."""
    info = main.getdminfo(column)
    cubes = list(info["SPEC"].get("HYPERCUBES", {}).values())
    if info["TYPE"] != "TiledColumnStMan" or len(cubes) != 1 or main.endianformat() != sys.byteorder:
        return False
    cube = cubes[0]
    return list(cube["TileShape"][:-1]) == list(cube["CellShape"])


def _tiled(name: str, column: str, cell_shape: tuple[int, ...], bits_per_value: int, tile_channels: int | None = None) -> dict:
    """A TiledColumnStMan for `column` (C-order cell shape) with tiles of about TILE_BYTES: whole rows, or the first
    `tile_channels` of the cell's first axis (channels) of each row."""
    tile_cell = list(cell_shape)
    if tile_channels:
        tile_cell[0] = min(tile_channels, tile_cell[0])
    row_bits = int(np.prod(tile_cell)) * bits_per_value
    rows = max(1, TILE_BYTES * 8 // row_bits)
    return {"TYPE": "TiledColumnStMan", "NAME": name, "COLUMNS": np.array([column]),
            "SPEC": {"DEFAULTTILESHAPE": np.array([*tile_cell[::-1], rows], dtype=np.int32)}}


def main_table_description(n_chan: int, n_corr: int, model_data: bool = False) -> dict:
    """Main-table columns that differ from default_ms's: DATA (and MODEL_DATA) added; FLAG, WEIGHT, SIGMA with fixed
    cell shapes."""
    model = [makearrcoldesc("MODEL_DATA", 0j, valuetype="complex", shape=[n_chan, n_corr], options=5,
                            comment="The model data column")] if model_data else []
    return maketabdesc([
        makearrcoldesc("DATA", 0j, valuetype="complex", shape=[n_chan, n_corr], options=5, comment="The data column"),
        *model,
        makearrcoldesc("FLAG", False, valuetype="boolean", shape=[n_chan, n_corr], options=5,
                       comment="The data flags, array of bools with same shape as data"),
        makearrcoldesc("WEIGHT", 0.0, valuetype="float", shape=[n_corr], options=5,
                       comment="Weight for each polarization spectrum"),
        makearrcoldesc("SIGMA", 0.0, valuetype="float", shape=[n_corr], options=5,
                       comment="Estimated rms noise for channel with unity bandpass response"),
    ])


def main_table_layout(n_chan: int, n_corr: int, tile_channels: int | None = None, model_data: bool = False) -> dict:
    """The data-manager info of the main table (see the module docstring); DATA, MODEL_DATA and FLAG tiles span
    `tile_channels` channels (default all)."""
    model = [_tiled("TiledModel", "MODEL_DATA", (n_chan, n_corr), 64, tile_channels)] if model_data else []
    managers = [
        _tiled("TiledDATA", "DATA", (n_chan, n_corr), 64, tile_channels),
        *model,
        _tiled("TiledFlag", "FLAG", (n_chan, n_corr), 1, tile_channels),
        _tiled("TiledWeight", "WEIGHT", (n_corr,), 32),
        _tiled("TiledSigma", "SIGMA", (n_corr,), 32),
        _tiled("TiledUVW", "UVW", (3,), 64),
        {"TYPE": "IncrementalStMan", "NAME": "ISMData", "SPEC": {"BUCKETSIZE": BUCKET_BYTES},
         "COLUMNS": np.array(INCREMENTAL_COLUMNS)},
        {"TYPE": "StandardStMan", "NAME": "SSMData", "SPEC": {"BUCKETSIZE": BUCKET_BYTES},
         "COLUMNS": np.array(STANDARD_COLUMNS)},
    ]
    return {f"*{i}": manager for i, manager in enumerate(managers, start=1)}
