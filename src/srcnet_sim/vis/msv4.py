"""MeasurementSet v4 writer: a processing set in xradio's zarr schema (MSv4 4.0.1, as xradio 1.3 defines and checks
it) of one partition, its chunks written a block at a time by whoever computed the block.

Layout of `<FILE_PREFIX>measurements.ps.zarr` (zarr format 3):
- `/` the processing set (attrs type "processing_set");
- `/<stem>_0` the MSv4 visibility dataset: coordinates time (unix seconds UTC, the sample centres), baseline_id,
  frequency (Hz, TOPO), polarization (XX, XY, YX, YY), uvw_label; VISIBILITY (time, baseline_id, frequency,
  polarization) complex64 Jy, FLAG, WEIGHT (float32, 1/sigma^2 of one real component), UVW (m, J2000 = fk5),
  TIME_CENTROID, EFFECTIVE_INTEGRATION_TIME; with MODEL_DATA=on also VISIBILITY_MODEL in a "model" data group;
- `/<stem>_0/antenna_xds` and `/<stem>_0/field_and_source_base_xds`.

Conventions are the MSv2's (ARCHITECTURE.md): V = sum I exp(-2 pi i (u l + v m + w (n - 1))), UVW of antenna 2
minus antenna 1 in the phase centre's J2000 frame, baselines in the MSv2's row order (ANTENNA1 < ANTENNA2).

Chunks: (chunk_times, all baselines, chunk_channels, all correlations) for the per-channel arrays and
(chunk_times, all baselines[, 3]) for the others, with the run's block shape: a block fills whole chunks, so blocks
written by different processes never share a file, and a rewritten block (a resumed run) writes the same bytes.
VISIBILITY and UVW are stored raw (the size is known before the run; noisy visibilities do not compress: measured
1.000 with Blosc-LZ4), FLAG, WEIGHT and the time columns Blosc-LZ4 with byte shuffle (constant over long runs: they
shrink to almost nothing). See docs/architecture.md, "MeasurementSet v4".
"""

from __future__ import annotations

import datetime
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim import __version__
from srcnet_sim.fs.durable import fsync_path
from srcnet_sim.vis.reader import MainTableScan, MSMetadata
from srcnet_sim.vis.writer import LINEAR_CORR_TYPES, MSDescription

SCHEMA_VERSION = "4.0.1"
STORE_SUFFIX = ".ps.zarr"
MJD_TO_UNIX_S = -3_506_716_800.0  # unix seconds = MJD seconds + this (MJD 40587 is 1970-01-01)
POLARIZATIONS = ("XX", "XY", "YX", "YY")  # the MSv2's CORR_TYPE 9..12, in the same order
SCAN_INTENT = "OBSERVE_TARGET#ON_SOURCE"
PER_CHANNEL = ("VISIBILITY", "VISIBILITY_MODEL", "FLAG", "WEIGHT")
PER_ROW = ("UVW", "TIME_CENTROID", "EFFECTIVE_INTEGRATION_TIME")
MARKER_ATTR = "srcnet_sim_store"  # the root's attribute a process checks before writing into a store


@dataclass(frozen=True)
class StoreShape:
    """A store's partition and its chunk shape: chunk_times time steps x chunk_channels channels (all baselines and
    correlations); n_times x n_bl x n_channels the arrays' shape."""

    partition: str
    n_times: int
    n_bl: int
    n_channels: int
    chunk_times: int
    chunk_channels: int
    model: bool


def partition_name(store: Path) -> str:
    """`<stem>_0` for `<stem>.ps.zarr` (xradio's converter names partitions the same way)."""
    name = Path(store).name
    return (name[: -len(STORE_SUFFIX)] if name.endswith(STORE_SUFFIX) else name) + "_0"


def _iso(mjd_s: float) -> str:
    """ISO 8601 UTC of MJD seconds (to the microsecond)."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (epoch + datetime.timedelta(seconds=mjd_s + MJD_TO_UNIX_S)).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _quantity(value: float, units: str) -> dict:
    return {"data": float(value), "dims": [], "attrs": {"units": units, "type": "quantity"}}


def create_store(path: Path, description: MSDescription, times_s: np.ndarray, interval_s: float, ant1: np.ndarray,
                 ant2: np.ndarray, chunk_times: int, chunk_channels: int, model: bool = False,
                 partition: str | None = None) -> StoreShape:
    """Create the processing set at `path` (a new directory): every coordinate, attribute and sub-dataset written,
    the data arrays created empty with their chunks (filled by `ProcessingSetWriter.put_block`).

    Args:
        description: what the MSv2's subtables describe (the same object: both formats say the same).
        times_s: (n_t,) sample centres, MJD seconds UTC; interval_s their length, s.
        ant1, ant2: (n_bl,) antenna indices of the baselines, in the MSv2's row order.
        chunk_times, chunk_channels: the blocks' shape.
        model: VISIBILITY_MODEL is created (MODEL_DATA=on).
        partition: the partition's name (default partition_name(path); a store made under a temporary name and
            renamed passes its final one).
    """
    import dask.array as da
    import xarray as xr
    import zarr.codecs

    tel = description.telescope
    names = np.array(tel.station_names)
    freq = np.asarray(description.freq_hz, dtype=np.float64)
    n_t, n_bl, n_c, n_p = len(times_s), len(ant1), len(freq), len(POLARIZATIONS)
    chunk_times, chunk_channels = min(chunk_times, n_t), min(chunk_channels, n_c)
    # The dataset's creation date is the observation's end, when a correlator would have written it: a store's bytes
    # then depend only on the run's settings (every executor, and a resumed run, write the same files).
    end_s = description.time_range_s[1]
    now = _iso(end_s)
    unix_s = np.asarray(times_s, dtype=np.float64) + MJD_TO_UNIX_S
    time_attrs = {"type": "time", "units": "s", "scale": "utc", "format": "unix"}
    coords = {
        "time": ("time", unix_s, {**time_attrs, "integration_time": _quantity(interval_s, "s")}),
        "baseline_id": ("baseline_id", np.arange(n_bl, dtype=np.int64)),
        "baseline_antenna1_name": ("baseline_id", names[np.asarray(ant1)]),
        "baseline_antenna2_name": ("baseline_id", names[np.asarray(ant2)]),
        "frequency": ("frequency", freq, {
            "type": "spectral_coord", "units": "Hz", "observer": "TOPO", "spectral_window_name": "SPW0",
            "spectral_window_intents": ["UNSPECIFIED"],
            "reference_frequency": {"data": float(freq[0]), "dims": [],
                                    "attrs": {"units": "Hz", "type": "spectral_coord", "observer": "TOPO"}},
            "channel_width": _quantity(description.channel_width_hz, "Hz")}),
        "polarization": ("polarization", np.array(POLARIZATIONS)),
        "uvw_label": ("uvw_label", np.array(["u", "v", "w"])),
        "field_name": ("time", np.full(n_t, description.field_name)),
        "scan_name": ("time", np.full(n_t, "1"), {"scan_intents": [SCAN_INTENT]}),
    }
    vis_chunks = (chunk_times, n_bl, chunk_channels, n_p)
    row_chunks = (chunk_times, n_bl)

    def empty(shape: tuple[int, ...], chunks: tuple[int, ...], dtype) -> da.Array:
        return da.zeros(shape, chunks=chunks, dtype=dtype)

    per_channel = ("time", "baseline_id", "frequency", "polarization")
    data_vars = {
        "VISIBILITY": (per_channel, empty((n_t, n_bl, n_c, n_p), vis_chunks, np.complex64),
                       {"type": "quanta", "units": "Jy", "long_name": "Visibility values"}),
        "FLAG": (per_channel, empty((n_t, n_bl, n_c, n_p), vis_chunks, bool), {}),
        "WEIGHT": (per_channel, empty((n_t, n_bl, n_c, n_p), vis_chunks, np.float32),
                   {"type": "quanta", "units": "Jy-2"}),
        "UVW": (("time", "baseline_id", "uvw_label"), empty((n_t, n_bl, 3), (*row_chunks, 3), np.float64),
                {"type": "uvw", "units": "m", "frame": "fk5"}),
        "TIME_CENTROID": (("time", "baseline_id"), empty((n_t, n_bl), row_chunks, np.float64), time_attrs),
        "EFFECTIVE_INTEGRATION_TIME": (("time", "baseline_id"), empty((n_t, n_bl), row_chunks, np.float64),
                                       {"type": "quantity", "units": "s"}),
    }
    if model:
        data_vars["VISIBILITY_MODEL"] = (per_channel, empty((n_t, n_bl, n_c, n_p), vis_chunks, np.complex64),
                                         {"type": "quanta", "units": "Jy", "long_name": "Visibility values"})
    group = {"flag": "FLAG", "weight": "WEIGHT", "uvw": "UVW", "field_and_source": "field_and_source_base_xds",
             "date": now}
    data_groups = {"base": {"correlated_data": "VISIBILITY", **group,
                            "description": "simulated visibilities (the MSv2's DATA)"}}
    if model:
        data_groups["model"] = {"correlated_data": "VISIBILITY_MODEL", **group,
                                "description": "visibilities before gains and noise (the MSv2's MODEL_DATA)"}
    visibility = xr.Dataset(data_vars, coords, attrs={
        "schema_version": SCHEMA_VERSION, "creator": {"software_name": "srcnet-sim", "version": __version__},
        "creation_date": now, "type": "visibility", "data_groups": data_groups,
        "observation_info": {"observer": ["srcnet-sim"], "release_date": _iso(end_s),
                             "project_UID": description.field_name, "observing_log": "\n".join(description.history)},
        "processor_info": {"type": "CORRELATOR", "sub_type": "srcnet-sim simulator"},
    })
    n_ant = tel.n_dish
    antenna = xr.Dataset(
        {"ANTENNA_POSITION": (("antenna_name", "cartesian_pos_label"), np.asarray(tel.itrf_m, dtype=np.float64),
                              {"type": "location", "units": "m", "frame": "ITRS", "coordinate_system": "geocentric",
                               "origin_object_name": "earth"}),
         "ANTENNA_DISH_DIAMETER": ("antenna_name", np.asarray(tel.diameters_m, dtype=np.float64),
                                   {"type": "quantity", "units": "m"}),
         "ANTENNA_RECEPTOR_ANGLE": (("antenna_name", "receptor_label"), np.tile([0.0, np.pi / 2], (n_ant, 1)),
                                    {"type": "quantity", "units": "rad"})},
        {"antenna_name": ("antenna_name", names), "station_name": ("antenna_name", names),
         "mount": ("antenna_name", np.full(n_ant, "ALT-AZ")), "telescope_name": ("antenna_name", np.full(n_ant, tel.name)),
         "cartesian_pos_label": ("cartesian_pos_label", np.array(["x", "y", "z"])),
         "receptor_label": ("receptor_label", np.array(["pol_0", "pol_1"])),
         "polarization_type": (("antenna_name", "receptor_label"), np.tile(["X", "Y"], (n_ant, 1)))},
        attrs={"type": "antenna", "relocatable_antennas": False, "overall_telescope_name": tel.name})
    field = xr.Dataset(
        {"FIELD_PHASE_CENTER_DIRECTION": (("field_name", "sky_dir_label"),
                                          np.array([description.phase_centre_rad], dtype=np.float64),
                                          {"type": "sky_coord", "units": "rad", "frame": "fk5"})},
        {"field_name": ("field_name", [description.field_name]), "source_name": ("field_name", [description.field_name]),
         "sky_dir_label": ("sky_dir_label", np.array(["ra", "dec"]))},
        attrs={"type": "field_and_source"})
    partition = partition or partition_name(path)
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"type": "processing_set", MARKER_ATTR: partition}),
                                  f"/{partition}": visibility, f"/{partition}/antenna_xds": antenna,
                                  f"/{partition}/field_and_source_base_xds": field})
    raw = {"compressors": None}
    packed = {"compressors": [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]}
    encoding = {name: (raw if name in ("VISIBILITY", "VISIBILITY_MODEL", "UVW") else packed) for name in data_vars}
    with warnings.catch_warnings():
        # zarr 3 warns that fixed-length strings (the names) have no v3 data-type specification yet; xradio's own
        # converter writes them the same way, and xradio reads them
        warnings.filterwarnings("ignore", message="The data type .* does not have a Zarr V3 specification")
        tree.to_zarr(str(path), mode="w-", encoding={f"/{partition}": encoding}, consolidated=True, compute=False,
                     zarr_format=3)
    shape = StoreShape(partition, n_t, n_bl, n_c, chunk_times, chunk_channels, model)
    _fsync_tree(Path(path))
    return shape


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (a store just created: its structure survives a crash)."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(directory) / name)
        fsync_path(Path(directory))


UNFINISHED_WRITE = re.compile(r"\.[0-9a-f]{32}\.partial$")  # zarr's LocalStore writes name.<uuid4 hex>.partial, renames


def remove_unfinished_writes(path: Path) -> list[Path]:
    """Remove from the store at `path` the temporary files of chunk writes a killed run left (zarr's LocalStore
    writes each chunk to `<name>.<uuid>.partial`, then renames it into place): a resumed store then holds what an
    uninterrupted one does. Only while no other process writes the store (once every block is written).
    Returns the files removed."""
    removed = [Path(root) / name for root, _, names in os.walk(path) for name in names if UNFINISHED_WRITE.search(name)]
    for leftover in removed:
        leftover.unlink()
    return removed


class ProcessingSetWriter:
    """Writes blocks into a store made by `create_store`; opened by path, so any process that sees the path writes
    its own blocks (a Dask worker, the run's writer thread)."""

    def __init__(self, path: Path) -> None:
        import zarr

        self.path = Path(path)
        root = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
        partition = root.attrs.get(MARKER_ATTR)
        if not isinstance(partition, str) or partition not in root:
            raise RuntimeError(f"{path} is not a processing set made by srcnet-sim")
        group = root[partition]
        # every chunk is a file, an all-False FLAG chunk too: a store's files do not depend on its values
        with zarr.config.set({"array.write_empty_chunks": True}):
            self.arrays = {name: zarr.open_array(str(self.path / partition / name), mode="r+", zarr_format=3)
                           for name in (*PER_CHANNEL, *PER_ROW) if name in group}
        vis = self.arrays["VISIBILITY"]
        n_t, n_bl, n_c, _ = vis.shape
        self.shape = StoreShape(partition, n_t, n_bl, n_c, vis.chunks[0], vis.chunks[2], "VISIBILITY_MODEL" in self.arrays)
        self._weights: tuple[np.ndarray, np.ndarray] | None = None

    def fits_chunks(self, time_start: int, time_stop: int, chan_start: int, chan_stop: int) -> bool:
        """The block [time_start, time_stop) x [chan_start, chan_stop) covers whole chunks (ends at the arrays' ends
        included): no other block writes into its files."""
        s = self.shape
        return (time_start % s.chunk_times == 0 and chan_start % s.chunk_channels == 0
                and (time_stop % s.chunk_times == 0 or time_stop == s.n_times)
                and (chan_stop % s.chunk_channels == 0 or chan_stop == s.n_channels))

    def put_block(self, time_start: int, chan_start: int, interval_s: float, uvw_m: np.ndarray, data: np.ndarray,
                  sigma: np.ndarray, flag: np.ndarray | None = None, model: np.ndarray | None = None) -> None:
        """Write time steps [time_start, time_start + n_t) x channels [chan_start, chan_start + n_c), then fsync the
        chunk files written. Rewriting is idempotent. Arguments as vis.writer.MeasurementSetWriter.put_rows:
        uvw_m (n_t, n_bl, 3) m; data, flag, model (n_t, n_bl, n_c, 4); sigma (n_bl,) Jy (WEIGHT = 1/sigma^2).
        The rows' own columns (UVW, TIME_CENTROID, EFFECTIVE_INTEGRATION_TIME) are written with channel 0's block."""
        n_t, n_bl, n_c, n_p = data.shape
        times = slice(time_start, time_start + n_t)
        channels = slice(chan_start, chan_start + n_c)
        values = {"VISIBILITY": np.asarray(data, dtype=np.complex64),
                  "FLAG": np.zeros(data.shape, dtype=bool) if flag is None else np.asarray(flag, dtype=bool),
                  "WEIGHT": np.broadcast_to(self._weight(sigma)[None, :, None, :], data.shape)}
        if model is not None and "VISIBILITY_MODEL" in self.arrays:
            values["VISIBILITY_MODEL"] = np.asarray(model, dtype=np.complex64)
        for name, value in values.items():
            self.arrays[name][times, :, channels, :] = value
        written = list(values)
        if chan_start == 0:
            centres = self.arrays["TIME_CENTROID"]
            unix_s = self._time_coordinate()[times]
            self.arrays["UVW"][times] = np.asarray(uvw_m, dtype=np.float64)
            centres[times] = np.repeat(unix_s[:, None], n_bl, axis=1)
            self.arrays["EFFECTIVE_INTEGRATION_TIME"][times] = np.full((n_t, n_bl), float(interval_s))
            written += list(PER_ROW)
        self._fsync_chunks(written, times, channels)

    def _time_coordinate(self) -> np.ndarray:
        import zarr

        if not hasattr(self, "_unix_s"):
            self._unix_s = np.asarray(zarr.open_array(str(self.path / self.shape.partition / "time"), mode="r")[:])
        return self._unix_s

    def _weight(self, sigma: np.ndarray) -> np.ndarray:
        """(n_bl, 4) float32 WEIGHT = 1/sigma^2, as the MSv2's WEIGHT column (computed once while sigma is the same)."""
        sigma = np.asarray(sigma)
        if self._weights is None or not np.array_equal(self._weights[0], sigma):
            rows = np.repeat(sigma.astype(np.float32)[:, None], len(POLARIZATIONS), axis=1)
            self._weights = (sigma.copy(), 1.0 / rows**2)
        return self._weights[1]

    def _fsync_chunks(self, names: list[str], times: slice, channels: slice) -> None:
        """fsync the chunk files of `names` holding [times] x [channels] and their directories."""
        s = self.shape
        t_chunks = range(times.start // s.chunk_times, -(-times.stop // s.chunk_times))
        c_chunks = range(channels.start // s.chunk_channels, -(-channels.stop // s.chunk_channels))
        for name in names:
            base = self.path / s.partition / name / "c"
            for t in t_chunks:
                if name in PER_CHANNEL:
                    files = [base / str(t) / "0" / str(c) / "0" for c in c_chunks]
                else:
                    files = [base / str(t) / "0" / "0"] if name == "UVW" else [base / str(t) / "0"]
                for file in files:
                    fsync_path(file)
                    fsync_path(file.parent)


def read_summary(path: Path, scan: MainTableScan | None = None) -> tuple[MSMetadata, MainTableScan]:
    """What a processing set made by `create_store` says of itself, read with zarr from the directory or its staged
    zip (the arrays' chunks one at a time: memory does not grow with the store): the MSv2 reader's metadata and
    main-table scan (times in MJD seconds UTC), for the ObsCore record. `scan`: the scan a reader of the same
    visibilities made already (imaging), returned as it is instead of reading the UVW again."""
    import zarr

    store = zarr.storage.ZipStore(str(path), mode="r") if Path(path).is_file() else str(path)
    root = zarr.open_group(store, mode="r", zarr_format=3)
    partition = root[root.attrs[MARKER_ATTR]]
    frequency = partition["frequency"]
    freq_hz = np.asarray(frequency[:], dtype=np.float64)
    width = np.full(len(freq_hz), float(frequency.attrs["channel_width"]["data"]))
    times = np.asarray(partition["time"][:], dtype=np.float64) - MJD_TO_UNIX_S
    interval = float(partition["time"].attrs["integration_time"]["data"])
    ra, dec = partition["field_and_source_base_xds"]["FIELD_PHASE_CENTER_DIRECTION"][0]
    corr_types = [LINEAR_CORR_TYPES[POLARIZATIONS.index(p)] for p in partition["polarization"][:]]
    meta = MSMetadata(freq_hz=freq_hz, channel_width_hz=width, phase_centre_rad=(float(ra), float(dec)),
                      corr_types=corr_types, telescope_name=str(partition["antenna_xds"].attrs["overall_telescope_name"]))
    if scan is None:
        uvw, longest = partition["UVW"], 0.0
        for start in range(0, uvw.shape[0], uvw.chunks[0]):
            chunk = uvw[start:start + uvw.chunks[0]]
            longest = max(longest, float(np.hypot(chunk[..., 0], chunk[..., 1]).max()))
        scan = MainTableScan(start_s=float(times.min() - interval / 2), end_s=float(times.max() + interval / 2),
                             longest_uv_m=longest, sample_intervals_s={float(t): interval for t in times})
    if not isinstance(store, str):
        store.close()
    return meta, scan
