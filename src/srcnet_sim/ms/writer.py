"""MeasurementSet v2 writer (python-casacore): subtables once, main-table rows one time step at a time.

Holds no science: it receives times, UVW, visibilities and weights as arrays and writes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore.tables import default_ms, makearrcoldesc, makescacoldesc, maketabdesc, table

from srcnet_sim.ms.observatory import ARRAY_NAME_COLUMN, ms_telescope_name
from srcnet_sim.telescope import Telescope

# casacore Stokes enumeration: XX=9, XY=10, YX=11, YY=12.
LINEAR_CORR_TYPES = (9, 10, 11, 12)
LINEAR_CORR_PRODUCTS = ((0, 0), (0, 1), (1, 0), (1, 1))
FREQ_FRAME_TOPO = 5


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
    """Create an MS at `path` and append rows time step by time step.

    Use as a context manager; `append` writes one block of rows (one time step). DATA is complex64.
    """

    def __init__(self, path: Path, description: MSDescription, n_rows: int = 0) -> None:
        """Create the MS with `n_rows` rows allocated at once (a run's rows, written later with `put_rows`): the
        table's structure is then final from the start, and a process killed while writing leaves only rows'
        values unfinished, which a resumed run writes again. DATA, FLAG, SIGMA and WEIGHT have fixed shapes."""
        self.path = Path(path)
        self.description = description
        n_chan, n_corr = len(description.freq_hz), len(LINEAR_CORR_TYPES)
        data_desc = makearrcoldesc("DATA", 0j, valuetype="complex", shape=[n_chan, n_corr], options=5,
                                   comment="The data column")
        fixed = [makearrcoldesc("FLAG", False, valuetype="boolean", shape=[n_chan, n_corr], options=5,
                                comment="The data flags, array of bools with same shape as data"),
                 makearrcoldesc("SIGMA", 0.0, valuetype="float", shape=[n_corr], options=5,
                                comment="Estimated rms noise for channel with unity bandpass response"),
                 makearrcoldesc("WEIGHT", 0.0, valuetype="float", shape=[n_corr], options=5,
                                comment="Weight for each polarization spectrum")]
        dminfo = {"*1": {"TYPE": "TiledColumnStMan", "NAME": "TiledDATA",
                         "SPEC": {"DEFAULTTILESHAPE": np.array([n_corr, n_chan, max(1, 32768 // max(1, n_chan * n_corr))], dtype=np.int32)},
                         "COLUMNS": np.array(["DATA"])}}
        self._main = default_ms(str(self.path), maketabdesc([data_desc, *fixed]), dminfo)
        self._n_rows = 0
        self._write_subtables()
        if n_rows:
            self._main.addrows(n_rows)
            self._main.flush()  # the space of every row taken now: later writes overwrite, never grow the files

    def __enter__(self) -> "MeasurementSetWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._main is not None:
            self._main.flush()
            self._main.close()
            self._main = None

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @classmethod
    def reopen(cls, path: Path) -> "MeasurementSetWriter":
        """Open an MS this writer made before (a resumed run) to write more rows; its subtables are kept."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.description = None
        writer._main = table(str(writer.path), readonly=False, ack=False)
        writer._n_rows = writer._main.nrows()
        return writer

    def flush(self) -> None:
        """Write casacore's buffers to the files, then fsync the main table's files (a resumable state on disk)."""
        self._main.flush()
        for path in self.path.iterdir():
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

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
        self.put_rows(self._n_rows, np.full(len(ant1), time_s), interval_s, ant1, ant2, uvw_m, data, sigma, flag=flag)

    def put_rows(
        self,
        start_row: int,
        time_s: np.ndarray,
        interval_s: float,
        ant1: np.ndarray,
        ant2: np.ndarray,
        uvw_m: np.ndarray,
        data: np.ndarray,
        sigma: np.ndarray,
        chan_start: int = 0,
        flag: np.ndarray | None = None,
    ) -> None:
        """Write rows [start_row, start_row + n), adding rows where the table is shorter (rewriting is idempotent).

        Args:
            time_s: (n,) sample centre of each row, MJD seconds UTC; interval_s: sample length, seconds.
            ant1, ant2: (n,) antenna indices; uvw_m: (n, 3) metres.
            data: (n, n_chan_block, n_corr) visibilities of channels [chan_start, chan_start + n_chan_block), Jy;
                the other channels' DATA and FLAG are left as they are.
            sigma: (n,) noise rms of one real component per correlation, Jy (WEIGHT = 1/sigma^2).
            flag: like data, bool, default all False.
        """
        n = len(ant1)
        n_corr = data.shape[2]
        main = self._main
        if start_row + n > main.nrows():
            main.addrows(start_row + n - main.nrows())
        sigma_rows = np.repeat(np.asarray(sigma, dtype=np.float32)[:, None], n_corr, axis=1)
        columns = {
            "TIME": np.asarray(time_s, dtype=np.float64),
            "TIME_CENTROID": np.asarray(time_s, dtype=np.float64),
            "INTERVAL": np.full(n, interval_s),
            "EXPOSURE": np.full(n, interval_s),
            "ANTENNA1": ant1.astype(np.int32),
            "ANTENNA2": ant2.astype(np.int32),
            "UVW": np.asarray(uvw_m, dtype=np.float64),
            "SIGMA": sigma_rows,
            "WEIGHT": 1.0 / sigma_rows**2,
            "SCAN_NUMBER": np.ones(n, dtype=np.int32),
            "STATE_ID": np.full(n, -1, dtype=np.int32),
            "PROCESSOR_ID": np.full(n, -1, dtype=np.int32),
        }
        for name, values in columns.items():
            main.putcol(name, values, startrow=start_row, nrow=n)
        flag = np.zeros(data.shape, dtype=bool) if flag is None else flag
        for name, values in (("DATA", data), ("FLAG", flag)):
            if chan_start == 0 and data.shape[1] == self._n_channels():
                main.putcol(name, values, startrow=start_row, nrow=n)
            else:
                main.putcolslice(name, values, blc=[chan_start, 0], trc=[chan_start + data.shape[1] - 1, n_corr - 1],
                                 startrow=start_row, nrow=n)
        self._n_rows = max(self._n_rows, start_row + n)

    def _n_channels(self) -> int:
        """Channels of the fixed-shape DATA column (n_chan, n_corr)."""
        return int(self._main.getcoldesc("DATA")["shape"][0])

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
            site = np.array([v.to_value("m") for v in tel.site.to_geocentric()])
            obs.putcol("TELESCOPE_LOCATION", site[None, :])
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
