"""The true gains of a run (GAINS=on) as CASA calibration tables, written with python-casacore.

Three tables in one directory, in the layout CASA 6's NewCalTable has (what gaincal, bandpass and polcal write,
and applycal reads):

- `gains.G` ("G Jones"): one row per time step and dish, CPARAM (1, 2) = (g_X, g_Y) at the sample time;
- `bandpass.B` ("B Jones"): one row per dish, CPARAM (n_chan, 2), the bandpass of every channel;
- `leakage.Df` ("Df Jones"): one row per dish, CPARAM (n_chan, 2) = (d_X, d_Y), the same in every channel.

Applied together in that order (applycal gaintable=[G, B, Df], interp "nearest" or "linear": the solutions are
at the sample times), CASA divides out exactly the Jones matrices J = B G D the simulation applied
(instrument.gains). The gains are absolute (no reference dish: ANTENNA2 = -1); PARAMERR is 0, FLAG false.
ANTENNA, FIELD, OBSERVATION and HISTORY are the MeasurementSet's own; SPECTRAL_WINDOW too, with one channel
spanning the band for the G table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from casacore.tables import makearrcoldesc, makescacoldesc, maketabdesc, table

from srcnet_sim import __version__
from srcnet_sim.instrument.gains import DishGains

TABLE_NAMES = {"G": "gains.G", "B": "bandpass.B", "Df": "leakage.Dflls"}
VISCAL = {"G": "G Jones", "B": "B Jones", "Df": "DfLLS Jones"}  # DfLLS: D applied exactly (Df: to first order)
COPIED_SUBTABLES = ("ANTENNA", "FIELD", "OBSERVATION", "HISTORY", "SPECTRAL_WINDOW")
TIME_ROWS_PER_WRITE = 4096  # time steps of the G table written at once: bounded memory for any observation length
EXACT_SNR = 1e9  # the SNR column of exact (true) solutions: far above any solver's minsnr


def _main_description(n_chan: int) -> dict:
    seconds = {"QuantumUnits": ["s"]}
    epoch = {**seconds, "MEASINFO": {"type": "epoch", "Ref": "UTC"}}
    columns = [
        makescacoldesc("TIME", 0.0, keywords=epoch),
        makescacoldesc("FIELD_ID", 0),
        makescacoldesc("SPECTRAL_WINDOW_ID", 0),
        makescacoldesc("ANTENNA1", 0),
        makescacoldesc("ANTENNA2", 0),
        makescacoldesc("INTERVAL", 0.0, keywords=seconds),
        makescacoldesc("SCAN_NUMBER", 0),
        makescacoldesc("OBSERVATION_ID", 0),
        makearrcoldesc("CPARAM", 0j, valuetype="complex", shape=[n_chan, 2]),
        makearrcoldesc("PARAMERR", 0.0, valuetype="float", shape=[n_chan, 2]),
        makearrcoldesc("FLAG", False, valuetype="boolean", shape=[n_chan, 2]),
        makearrcoldesc("SNR", 0.0, valuetype="float", shape=[n_chan, 2]),
        makearrcoldesc("WEIGHT", 0.0, valuetype="float", shape=[n_chan, 2]),
    ]
    return maketabdesc(columns)


def _new_table(path: Path, kind: str, ms_path: Path, n_chan: int, n_rows: int) -> table:
    """An empty caltable of `kind` (G, B or Df) with `n_rows` rows and the MS's subtables, open for writing."""
    tab = table(str(path), _main_description(n_chan), nrow=n_rows, readonly=False, ack=False)
    tab.putinfo({"type": "Calibration", "subType": VISCAL[kind], "readme": f"srcnet-sim {__version__}: true gains"})
    tab.putkeywords({"ParType": "Complex", "MSName": ms_path.name, "VisCal": VISCAL[kind], "PolBasis": "unknown",
                     "CASA_Version": f"srcnet-sim {__version__}"})
    for name in COPIED_SUBTABLES:
        with table(str(ms_path / name), ack=False) as source:
            source.copy(str(path / name), deep=True, valuecopy=True)
        tab.putkeyword(name, f"Table: {path / name}")
    return tab


def _single_channel_window(path: Path) -> None:
    """The G table's SPECTRAL_WINDOW: each window as one channel at its band centre, as gaincal writes it."""
    with table(str(path / "SPECTRAL_WINDOW"), readonly=False, ack=False) as spw:
        for row in range(spw.nrows()):
            freq, width = spw.getcell("CHAN_FREQ", row), spw.getcell("CHAN_WIDTH", row)
            total = float(np.sum(np.abs(width)))
            spw.putcell("NUM_CHAN", row, 1)
            spw.putcell("CHAN_FREQ", row, np.array([0.5 * (freq[0] - width[0] / 2 + freq[-1] + width[-1] / 2)]))
            for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
                spw.putcell(column, row, np.array([total]))
            spw.putcell("REF_FREQUENCY", row, float(np.mean(freq)))


def _put_rows(tab: table, start: int, times_s: np.ndarray, interval_s: float, antenna: np.ndarray,
              cparam: np.ndarray) -> None:
    """Rows start.. of one time each (times_s (n,)) and dish (antenna (n,)), CPARAM (n, n_chan, 2)."""
    n = len(times_s)
    tab.putcol("TIME", times_s, start, n)
    tab.putcol("INTERVAL", np.full(n, interval_s), start, n)
    tab.putcol("ANTENNA1", antenna.astype(np.int32), start, n)
    tab.putcol("ANTENNA2", np.full(n, -1, dtype=np.int32), start, n)
    tab.putcol("SCAN_NUMBER", np.ones(n, dtype=np.int32), start, n)
    for column in ("FIELD_ID", "SPECTRAL_WINDOW_ID", "OBSERVATION_ID"):
        tab.putcol(column, np.zeros(n, dtype=np.int32), start, n)
    tab.putcol("CPARAM", cparam.astype(np.complex64), start, n)
    tab.putcol("PARAMERR", np.zeros(cparam.shape, dtype=np.float32), start, n)
    tab.putcol("FLAG", np.zeros(cparam.shape, dtype=bool), start, n)
    tab.putcol("SNR", np.full(cparam.shape, EXACT_SNR, dtype=np.float32), start, n)
    tab.putcol("WEIGHT", np.ones(cparam.shape, dtype=np.float32), start, n)


def write_caltables(directory: Path, ms_path: Path, gains: DishGains, times_s: np.ndarray, interval_s: float,
                    freq_hz: np.ndarray) -> Path:
    """Write the G, B and Df tables of `gains` into the new `directory` (see the module's docstring).

    Args:
        ms_path: the MeasurementSet the gains corrupt (its subtables are copied).
        times_s: (n_time,) sample centres, MJD seconds UTC; interval_s their spacing.
        freq_hz: (n_chan,) the MS's channel centres.
    """
    directory.mkdir()
    n_dish, n_time = gains.n_dish, len(times_s)
    dishes = np.arange(n_dish)
    path = directory / TABLE_NAMES["G"]
    with _new_table(path, "G", ms_path, 1, n_time * n_dish) as tab:
        _single_channel_window(path)
        for start in range(0, n_time, TIME_ROWS_PER_WRITE):
            chunk = times_s[start:start + TIME_ROWS_PER_WRITE]
            cparam = np.stack([gains.gain(float(t)) for t in chunk])[:, :, None, :]  # (n_t, n_dish, 1, 2)
            _put_rows(tab, start * n_dish, np.repeat(chunk, n_dish), interval_s, np.tile(dishes, len(chunk)),
                      cparam.reshape(-1, 1, 2))
    middle_s = np.full(n_dish, 0.5 * (times_s[0] + times_s[-1]))
    whole_s = float(times_s[-1] - times_s[0]) + interval_s
    with _new_table(directory / TABLE_NAMES["B"], "B", ms_path, len(freq_hz), n_dish) as tab:
        _put_rows(tab, 0, middle_s, whole_s, dishes, gains.bandpass(freq_hz))
    leakage = np.repeat(gains.leakage[:, None, :], len(freq_hz), axis=1)
    with _new_table(directory / TABLE_NAMES["Df"], "Df", ms_path, len(freq_hz), n_dish) as tab:
        _put_rows(tab, 0, middle_s, whole_s, dishes, leakage)
    return directory
