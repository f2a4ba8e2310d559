"""The MS write path: storage layout (tiled DATA/FLAG/WEIGHT/SIGMA/UVW, incremental scalars), `append_block`
against `append`, and every column read back by casacore and by pyuvdata (an independent reader) as written."""

from __future__ import annotations

import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from srcnet_sim.vis.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.products import staging
from srcnet_sim.simulate import geometry
from srcnet_sim.simulate.predict import baseline_pairs
from srcnet_sim.instrument import load_telescope

N_CHAN, N_T, INTERVAL_S = 5, 6, 8.0
START_S = 60000.5 * 86400.0
BLOCKS = (2, 3, 1)  # time steps per append_block call


def description() -> MSDescription:
    return MSDescription(telescope=load_telescope("SKA-MID-AA0.5"), freq_hz=1.3e9 + 2e6 * np.arange(N_CHAN),
                         channel_width_hz=2e6, phase_centre_rad=(2.62, 0.0386), field_name="write-test",
                         time_range_s=(START_S, START_S + N_T * INTERVAL_S), history=("a", "b"), application="test")


@pytest.fixture(scope="module")
def rows():
    """What is written: (times (n_t,), ant1, ant2 (n_bl,), uvw (n_t, n_bl, 3), data (n_t, n_bl, n_chan, 4), sigma, flag)."""
    telescope = load_telescope("SKA-MID-AA0.5")
    ant1, ant2 = baseline_pairs(telescope.n_dish, False)
    n_bl = len(ant1)
    rng = np.random.default_rng(7)
    times = START_S + INTERVAL_S * (np.arange(N_T) + 0.5)
    dish = geometry.dish_uvw(telescope.itrf_m, times, *description().phase_centre_rad)  # pyuvdata checks UVW
    uvw = dish[:, ant1] - dish[:, ant2]
    data = (rng.standard_normal((N_T, n_bl, N_CHAN, 4)) + 1j * rng.standard_normal((N_T, n_bl, N_CHAN, 4))).astype(np.complex64)
    sigma = rng.uniform(0.1, 2.0, n_bl)
    flag = rng.random((N_T, n_bl, N_CHAN, 4)) < 0.3
    return times, ant1, ant2, uvw, data, sigma, flag


def write(path: Path, rows, blocks: tuple[int, ...] | None, with_flags: bool = True, tile_channels: int | None = None) -> Path:
    times, ant1, ant2, uvw, data, sigma, flag = rows
    with MeasurementSetWriter(path, description(), tile_channels) as writer:
        if blocks is None:
            for t in range(N_T):
                writer.append(float(times[t]), INTERVAL_S, ant1, ant2, uvw[t], data[t], sigma, flag[t] if with_flags else None)
        else:
            first = 0
            for n in blocks:
                part = slice(first, first + n)
                writer.append_block(times[part], INTERVAL_S, ant1, ant2, uvw[part], data[part], sigma,
                                    flag[part] if with_flags else None)
                first += n
        assert writer.n_rows == N_T * len(ant1)
    return path


@pytest.fixture(scope="module")
def block_ms(tmp_path_factory, rows) -> Path:
    return write(tmp_path_factory.mktemp("block") / "block.ms", rows, BLOCKS)


def test_every_main_column_reads_back_as_written(block_ms: Path, rows):
    times, ant1, ant2, uvw, data, sigma, flag = rows
    n_bl = len(ant1)
    n = N_T * n_bl
    with table(str(block_ms), ack=False) as ms:
        assert ms.nrows() == n
        np.testing.assert_array_equal(ms.getcol("TIME"), np.repeat(times, n_bl))
        np.testing.assert_array_equal(ms.getcol("TIME_CENTROID"), np.repeat(times, n_bl))
        np.testing.assert_array_equal(ms.getcol("INTERVAL"), np.full(n, INTERVAL_S))
        np.testing.assert_array_equal(ms.getcol("EXPOSURE"), np.full(n, INTERVAL_S))
        np.testing.assert_array_equal(ms.getcol("ANTENNA1"), np.tile(ant1, N_T))
        np.testing.assert_array_equal(ms.getcol("ANTENNA2"), np.tile(ant2, N_T))
        np.testing.assert_array_equal(ms.getcol("UVW"), uvw.reshape(n, 3))
        assert ms.getcol("DATA").dtype == np.complex64
        np.testing.assert_array_equal(ms.getcol("DATA"), data.reshape(n, N_CHAN, 4))
        np.testing.assert_array_equal(ms.getcol("FLAG"), flag.reshape(n, N_CHAN, 4))
        sigma_rows = np.repeat(sigma.astype(np.float32)[:, None], 4, axis=1)
        np.testing.assert_array_equal(ms.getcol("SIGMA"), np.tile(sigma_rows, (N_T, 1)))
        np.testing.assert_array_equal(ms.getcol("WEIGHT"), np.tile(1.0 / sigma_rows**2, (N_T, 1)))
        np.testing.assert_array_equal(ms.getcol("SCAN_NUMBER"), np.ones(n))
        for column in ("STATE_ID", "PROCESSOR_ID"):
            np.testing.assert_array_equal(ms.getcol(column), np.full(n, -1))
        for column in ("ARRAY_ID", "DATA_DESC_ID", "FEED1", "FEED2", "FIELD_ID", "OBSERVATION_ID"):
            np.testing.assert_array_equal(ms.getcol(column), np.zeros(n))
        assert not ms.getcol("FLAG_ROW").any()
        assert not ms.iscelldefined("FLAG_CATEGORY", 0)
        # Cell by cell (as WSClean and CASA read), across tile boundaries, gives the same values.
        for row in (0, n_bl - 1, n_bl, n - 1):
            np.testing.assert_array_equal(ms.getcell("DATA", row), data.reshape(n, N_CHAN, 4)[row])
        keywords = ms.getcolkeywords("UVW")
        assert keywords["MEASINFO"]["type"] == "uvw" and keywords["QuantumUnits"] == ["m", "m", "m"]


def test_storage_layout_is_tiled_and_incremental(block_ms: Path):
    with table(str(block_ms), ack=False) as ms:
        managers = {column: dm["TYPE"] for dm in ms.getdminfo().values() for column in dm["COLUMNS"]}
        desc = ms.getdesc()
    for column in ("DATA", "FLAG", "WEIGHT", "SIGMA", "UVW"):
        assert managers[column] == "TiledColumnStMan", column
    for column in ("TIME", "INTERVAL", "SCAN_NUMBER", "FIELD_ID"):
        assert managers[column] == "IncrementalStMan", column
    assert managers["ANTENNA1"] == "StandardStMan"
    assert list(desc["DATA"]["shape"]) == list(desc["FLAG"]["shape"]) == [N_CHAN, 4]
    assert list(desc["WEIGHT"]["shape"]) == list(desc["SIGMA"]["shape"]) == [4]


def test_append_block_writes_the_same_table_as_append(tmp_path: Path, block_ms: Path, rows):
    """One dump per `append` and several per `append_block` give equal cells in every column."""
    one_by_one = write(tmp_path / "steps.ms", rows, None)
    with table(str(one_by_one), ack=False) as a, table(str(block_ms), ack=False) as b:
        assert a.colnames() == b.colnames() and a.nrows() == b.nrows()
        for column in a.colnames():
            if column == "FLAG_CATEGORY":
                continue
            np.testing.assert_array_equal(a.getcol(column), b.getcol(column), err_msg=column)


def test_tiles_of_a_block_of_channels_hold_the_same_values(tmp_path: Path, block_ms: Path, rows):
    """DATA and FLAG tiles of 2 of the 5 channels (for writers that write blocks of channels): the same cells."""
    ms = write(tmp_path / "tiles.ms", rows, BLOCKS, tile_channels=2)
    with table(str(ms), ack=False) as a, table(str(block_ms), ack=False) as b:
        shapes = {dm["NAME"]: dm["SPEC"]["HYPERCUBES"]["*1"]["TileShape"] for dm in a.getdminfo().values()
                  if dm["TYPE"] == "TiledColumnStMan"}
        assert list(shapes["TiledDATA"][:2]) == list(shapes["TiledFlag"][:2]) == [4, 2]
        for column in ("DATA", "FLAG", "UVW", "WEIGHT", "TIME"):
            np.testing.assert_array_equal(a.getcol(column), b.getcol(column), err_msg=column)
        np.testing.assert_array_equal(a.getcolslice("DATA", [1, 0], [3, 3]), b.getcolslice("DATA", [1, 0], [3, 3]))


def test_default_flags_are_false(tmp_path: Path, rows):
    ms = write(tmp_path / "noflags.ms", rows, BLOCKS, with_flags=False)
    with table(str(ms), ack=False) as t:
        assert not t.getcol("FLAG").any()


def test_taql_selects_on_the_incremental_time_column(block_ms: Path, rows):
    times, ant1 = rows[0], rows[1]
    with table(str(block_ms), ack=False) as ms:
        selected = ms.query(f"TIME = {float(times[3])!r} and ANTENNA1 != ANTENNA2", columns="DATA")
    assert selected.nrows() == sum(ant1 != rows[2])
    np.testing.assert_array_equal(selected.getcol("DATA"), rows[4][3][ant1 != rows[2]])


def test_pyuvdata_reads_the_block_written_ms(block_ms: Path, rows):
    from pyuvdata import UVData

    times, ant1, ant2, uvw, data, sigma, flag = rows
    uv = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any complaint of pyuvdata's about our MS fails the test
        uv.read(str(block_ms), data_column="DATA")
    n = N_T * len(ant1)
    assert (uv.Ntimes, uv.Nfreqs, uv.Npols, uv.Nblts) == (N_T, N_CHAN, 4, n)
    np.testing.assert_array_equal(uv.ant_1_array, np.tile(ant1, N_T))
    np.testing.assert_array_equal(uv.ant_2_array, np.tile(ant2, N_T))
    # Our correlations XX, XY, YX, YY are pyuvdata's -5, -7, -8, -6; pyuvdata keeps uvw = x(ant2) - x(ant1)
    # and conjugates the data on reading an MS (see test_measurement_set).
    pol_index = [uv.polarization_array.tolist().index(p) for p in (-5, -7, -8, -6)]
    np.testing.assert_array_equal(np.conj(uv.data_array[..., pol_index]), data.reshape(n, N_CHAN, 4))
    np.testing.assert_array_equal(uv.flag_array[..., pol_index], flag.reshape(n, N_CHAN, 4))
    np.testing.assert_allclose(-uv.uvw_array, uvw.reshape(n, 3), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.unique(uv.time_array), times / 86400.0 + 2400000.5, rtol=0, atol=1e-9)


def test_staged_tar_holds_the_ms_byte_for_byte(tmp_path: Path, block_ms: Path):
    target = staging.write_new_file(tmp_path / "ms.tar", staging.tar_directory(block_ms))
    with tarfile.open(target) as archive:
        members = {m.name: m for m in archive.getmembers()}
        files = sorted(p for p in block_ms.rglob("*") if p.is_file())
        assert len(files) > 10
        for path in files:
            name = f"{block_ms.name}/{path.relative_to(block_ms)}"
            assert members[name].size == path.stat().st_size
            assert archive.extractfile(name).read() == path.read_bytes(), name
        assert members[block_ms.name].isdir()
