"""Read Stokes I visibilities for imaging from any MeasurementSet (python-casacore), validating as it goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore.tables import table

from srcnet_sim.errors import UserInputError

# casacore Stokes codes: I=1, RR=5, LL=8, XX=9, YY=12.
STOKES_I_PAIRS = {(9, 12): "XX+YY", (5, 8): "RR+LL"}
STOKES_I = 1


@dataclass(frozen=True)
class Visibilities:
    """Stokes I visibilities of one field and spectral window.

    Attributes:
        uvw_m: (n_row, 3) float64 metres (CASA convention).
        freq_hz: (n_chan,) channel centres.
        vis: (n_row, n_chan) complex64 Stokes I, Jy.
        weight: (n_row, n_chan) float32 weight of Stokes I; 0 where flagged.
        phase_centre_rad: J2000 (ra, dec).
        time_range_s: (start, end) of the data: first TIME - INTERVAL/2, last TIME + INTERVAL/2, MJD seconds UTC.
        telescope_name: from OBSERVATION.
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

    @property
    def max_uvw_wavelengths(self) -> float:
        """Largest |uvw| among unflagged rows at the highest frequency: 1 / it is WSClean's theoretical beam."""
        used = np.any(self.weight > 0, axis=1)
        return float(np.linalg.norm(self.uvw_m[used], axis=1).max() * self.freq_hz.max() / 299_792_458.0)

    @property
    def longest_baseline_wavelengths(self) -> float:
        """Longest projected (u, v) baseline among unflagged rows, in wavelengths at the highest frequency."""
        used = np.any(self.weight > 0, axis=1)
        uv = np.hypot(self.uvw_m[used, 0], self.uvw_m[used, 1])
        return float(uv.max() * self.freq_hz.max() / 299_792_458.0) if uv.size else 0.0


def _open(path: Path, name: str = "") -> table:
    try:
        return table(f"{path}/{name}" if name else str(path), readonly=True, ack=False)
    except RuntimeError as exc:
        raise UserInputError("MS", f"{path} is not a MeasurementSet ({'no ' + name + ' table' if name else 'no table'})") from exc


def read_visibilities(path: Path) -> Visibilities:
    """Read DATA as Stokes I with WEIGHT_SPECTRUM or WEIGHT, honouring FLAG and FLAG_ROW.

    Stokes I = (XX + YY) / 2 (or (RR + LL) / 2); a sample is used only where both are unflagged,
    with weight 4 / (1/w_XX + 1/w_YY), the inverse variance of the mean.
    Raises UserInputError for a path that is not an MS, no DATA column, no XX/YY, RR/LL or I
    correlations, more than one spectral window or field, or all data flagged.
    """
    path = Path(path)
    if not (path / "table.dat").is_file():
        raise UserInputError("MS", f"{path} is not a MeasurementSet (no table.dat)")
    with _open(path) as main:
        if "DATA" not in main.colnames():
            raise UserInputError("MS", f"{path} has no DATA column")
        if main.nrows() == 0:
            raise UserInputError("MS", f"{path} has no rows")
        if len(np.unique(main.getcol("DATA_DESC_ID"))) > 1 or len(np.unique(main.getcol("FIELD_ID"))) > 1:
            raise UserInputError("MS", f"{path} holds several spectral windows or fields; image one at a time")
        data = main.getcol("DATA")
        flag = main.getcol("FLAG") | main.getcol("FLAG_ROW")[:, None, None]
        if "WEIGHT_SPECTRUM" in main.colnames() and main.iscelldefined("WEIGHT_SPECTRUM", 0):
            weight = main.getcol("WEIGHT_SPECTRUM")
        else:
            weight = np.broadcast_to(main.getcol("WEIGHT")[:, None, :], data.shape)
        uvw = main.getcol("UVW")
        times = main.getcol("TIME")
        half_interval = 0.5 * main.getcol("INTERVAL")
    with _open(path, "POLARIZATION") as pol:
        corr_types = [int(c) for c in pol.getcol("CORR_TYPE")[0]]
    with _open(path, "SPECTRAL_WINDOW") as spw:
        freq = spw.getcol("CHAN_FREQ")[0]
        width = np.abs(spw.getcol("CHAN_WIDTH")[0])
    with _open(path, "FIELD") as field:
        ra, dec = field.getcol("PHASE_DIR")[0, 0]
    with _open(path, "OBSERVATION") as obs:
        telescope = str(obs.getcol("TELESCOPE_NAME")[0]) if obs.nrows() else ""

    if STOKES_I in corr_types:
        i = corr_types.index(STOKES_I)
        vis, w, bad = data[..., i], weight[..., i], flag[..., i]
    else:
        pair = next((p for p in STOKES_I_PAIRS if p[0] in corr_types and p[1] in corr_types), None)
        if pair is None:
            raise UserInputError("MS", f"{path} has neither XX/YY, RR/LL nor I correlations (CORR_TYPE {corr_types})")
        a, b = corr_types.index(pair[0]), corr_types.index(pair[1])
        vis = 0.5 * (data[..., a] + data[..., b])
        wa, wb = weight[..., a], weight[..., b]
        with np.errstate(divide="ignore"):
            w = np.where((wa > 0) & (wb > 0), 4.0 / (1.0 / np.where(wa > 0, wa, 1) + 1.0 / np.where(wb > 0, wb, 1)), 0.0)
        bad = flag[..., a] | flag[..., b]
    w = np.where(bad | ~np.isfinite(vis), 0.0, w).astype(np.float32)
    if not np.any(w > 0):
        raise UserInputError("MS", f"{path}: all data are flagged (or have zero weight)")
    return Visibilities(
        uvw_m=np.ascontiguousarray(uvw, dtype=np.float64),
        freq_hz=np.asarray(freq, dtype=np.float64),
        vis=np.ascontiguousarray(np.where(w > 0, vis, 0), dtype=np.complex64),
        weight=np.ascontiguousarray(w),
        phase_centre_rad=(float(ra), float(dec)),
        time_range_s=(float((times - half_interval).min()), float((times + half_interval).max())),
        telescope_name=telescope,
        channel_width_hz=np.asarray(width, dtype=np.float64),
    )
