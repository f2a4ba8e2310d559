"""vis.writer_process: the MSv2 writer in its own process writes the same files as the writer in this one, gives its
errors back, ignores the stop signals the run handles, and dies with the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from srcnet_sim.instrument import load_telescope
from srcnet_sim.simulate.predict import baseline_pairs
from srcnet_sim.vis.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.vis.writer_process import MeasurementSetWriterProcess, shared_empty

N_CHAN, N_T, INTERVAL_S = 96, 6, 8.0  # rows of 3 KiB: a block spans whole pages
START_S = 60000.5 * 86400.0
BLOCKS = (2, 3, 1)  # time steps per put_rows
TELESCOPE = load_telescope("SKA-MID-AA0.5")
ANT1, ANT2 = baseline_pairs(TELESCOPE.n_dish, False)
N_BL = len(ANT1)


def description() -> MSDescription:
    return MSDescription(telescope=TELESCOPE, freq_hz=1.3e9 + 2e6 * np.arange(N_CHAN), channel_width_hz=2e6,
                         phase_centre_rad=(2.62, 0.0386), field_name="writer-process",
                         time_range_s=(START_S, START_S + N_T * INTERVAL_S), history=("a",), application="test")


def blocks(channel_blocks: int):
    """(start_row, put_rows keyword arguments) of every block: BLOCKS in time x `channel_blocks` in channel, with
    random data, model and flags (seeded)."""
    rng = np.random.default_rng(11)
    times = START_S + INTERVAL_S * (np.arange(N_T) + 0.5)
    shape = (N_T, N_BL, N_CHAN, 4)
    data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    model = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    flag = rng.random(shape) < 0.3
    uvw = rng.uniform(-1e4, 1e4, (N_T, N_BL, 3))
    sigma = rng.uniform(0.1, 2.0, N_BL)
    width = N_CHAN // channel_blocks
    first = 0
    for n in BLOCKS:
        t = slice(first, first + n)
        for c0 in range(0, N_CHAN, width):
            c = slice(c0, c0 + width)
            yield first * N_BL, dict(times_s=times[t], interval_s=INTERVAL_S, ant1=ANT1, ant2=ANT2, uvw_m=uvw[t],
                                     data=data[t, :, c], sigma=sigma, chan_start=c0, flag=flag[t, :, c],
                                     model=model[t, :, c])
        first += n


def new_ms(path: Path, tile_channels: int | None = None) -> Path:
    MeasurementSetWriter(path, description(), tile_channels=tile_channels, model_data=True).close()
    return path


def file_bytes(ms: Path) -> dict[str, bytes]:
    """The main table's files by name, what put_rows writes (casacore's lock file, which names the process, left
    out; the subtables, made here for both, hold bytes casacore leaves uninitialised)."""
    return {p.name: p.read_bytes() for p in sorted(ms.iterdir()) if p.is_file() and p.name != "table.lock"}


def in_shared_memory(arguments: dict) -> dict:
    """put_rows arguments with data, model and flag in arrays of shared_empty (as run.blocks.compute_block makes)."""
    moved = dict(arguments)
    for name in ("data", "model", "flag"):
        moved[name] = shared_empty(arguments[name].shape, arguments[name].dtype)
        moved[name][...] = arguments[name]
    return moved


@pytest.mark.parametrize("memory", ["copied", "shared"])
@pytest.mark.parametrize("channel_blocks", [1, 3])
def test_the_same_files_as_the_writer_in_this_process(tmp_path: Path, channel_blocks: int, memory: str):
    """Block for block (each flushed), the child writes byte for byte the files MeasurementSetWriter writes here:
    every column, all channels at once or a block of channels at a time, from arrays copied into the writer's
    shared memory or (shared_empty's) mapped by the child as they are."""
    tile_channels = N_CHAN // channel_blocks if channel_blocks > 1 else None
    here = MeasurementSetWriter.reopen(new_ms(tmp_path / "here.ms", tile_channels))
    child = MeasurementSetWriterProcess(new_ms(tmp_path / "child.ms", tile_channels))
    assert child.pid != os.getpid() and child.n_rows == 0
    for writer in (here, child):
        for start_row, arguments in blocks(channel_blocks):
            writer.put_rows(start_row, **(in_shared_memory(arguments) if writer is child and memory == "shared"
                                          else arguments))
            writer.flush()
        assert writer.n_rows == N_T * N_BL
        if writer is child:  # what went through the writer's own memory: everything, or the small arrays only
            copied = len(child._mapping)
            largest = max(a["data"].nbytes + a["model"].nbytes + a["flag"].nbytes for _, a in blocks(channel_blocks))
            assert copied >= largest if memory == "copied" else copied < largest / 4
        writer.close()
    child.close()  # again: nothing
    assert file_bytes(tmp_path / "child.ms") == file_bytes(tmp_path / "here.ms")
    with table(str(tmp_path / "child.ms"), ack=False) as main:
        assert main.nrows() == N_T * N_BL and main.getcol("DATA").shape == (N_T * N_BL, N_CHAN, 4)


def test_the_childs_errors_come_back_as_they_are_and_it_goes_on(tmp_path: Path):
    """A put_rows the writer refuses raises the writer's own ValueError here; the child then writes the next one."""
    start_row, arguments = next(blocks(1))
    with MeasurementSetWriterProcess(new_ms(tmp_path / "a.ms")) as writer:
        wrong = {**arguments, "uvw_m": arguments["uvw_m"][:, :-1]}
        with pytest.raises(ValueError, match="block of 2 steps x"):
            writer.put_rows(start_row, **wrong)
        writer.put_rows(start_row, **arguments)
        writer.flush()
    with table(str(tmp_path / "a.ms"), ack=False) as main:
        np.testing.assert_array_equal(main.getcol("DATA"), arguments["data"].reshape(-1, N_CHAN, 4))


def test_an_ms_that_does_not_open_is_casacores_error_and_no_child_is_left(tmp_path: Path):
    (tmp_path / "not.ms").mkdir()
    with pytest.raises(RuntimeError, match="not.ms"):
        MeasurementSetWriterProcess(tmp_path / "not.ms")


def test_a_child_that_dies_is_an_error_naming_the_ms_and_how_it_ended(tmp_path: Path):
    writer = MeasurementSetWriterProcess(new_ms(tmp_path / "a.ms"))
    os.kill(writer.pid, signal.SIGKILL)
    start_row, arguments = next(blocks(1))
    with pytest.raises(RuntimeError, match=r"writer process of .*a\.ms ended \(signal SIGKILL\)"):
        writer.put_rows(start_row, **arguments)
        writer.flush()


def test_the_child_ignores_sigterm_and_sigint(tmp_path: Path):
    """The run stops after the block being written (fs.stopping): a stop signal to the whole process group must not
    end the child in the middle of one."""
    with MeasurementSetWriterProcess(new_ms(tmp_path / "a.ms")) as writer:
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(writer.pid, sig)
        time.sleep(0.2)
        for start_row, arguments in blocks(1):
            writer.put_rows(start_row, **arguments)
        writer.flush()
        assert writer.n_rows == N_T * N_BL


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: a container's PID 1 may not reap the orphans it adopts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_killed_run_leaves_no_writer_behind(tmp_path: Path):
    """SIGKILL of the run's process kills its writer (PR_SET_PDEATHSIG): nothing writes into the MS that the next
    run resumes."""
    ms = new_ms(tmp_path / "a.ms")
    script = ("import sys, time\nfrom srcnet_sim.vis.writer_process import MeasurementSetWriterProcess, shared_empty\n"
              "w = MeasurementSetWriterProcess(sys.argv[1])\nprint(w.pid, flush=True)\ntime.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-c", script, str(ms)], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    child = int(run.stdout.readline())
    assert _alive(child)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_shared_memory_of_arrays_gone_is_reused_a_few_at_a_time_then_freed():
    """shared_empty keeps the memfds of arrays gone (at most POOL_SIZE, for the next blocks of the same size) and
    release_shared_memory closes them."""
    from srcnet_sim.vis import writer_process

    writer_process.release_shared_memory()
    first = shared_empty((1000, 4), np.complex64)
    descriptor = writer_process._memfd_place(first)[0]
    del first
    again = shared_empty((1000, 4), np.complex64)
    assert writer_process._memfd_place(again)[0] == descriptor and writer_process._memfd_place(again[1:])[1] == 32
    other = shared_empty((3,), bool)  # another size: a memfd of its own
    assert writer_process._memfd_place(other)[0] != descriptor
    many = [shared_empty((1000, 4), np.complex64) for _ in range(writer_process.POOL_SIZE + 2)]
    del many, again, other
    assert len(writer_process._pool) == writer_process.POOL_SIZE
    kept = [fd for fd, _ in writer_process._pool]
    writer_process.release_shared_memory()
    assert writer_process._pool == []
    for fd in kept:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_rows_without_flags_and_constant_columns_left_to_casacore_read_as_written(tmp_path: Path):
    """put_rows writes no FLAG for new rows without flags (casacore's new tiles are False) and the run-constant
    incremental columns (INTERVAL, ...) only where the row before differs: the MS's files are byte for byte those
    of the same rows with all-False flags given, and every row reads back its interval, scan, state and flags;
    rows written again (a resumed run) get them explicitly."""
    given, left = (MeasurementSetWriter.reopen(new_ms(tmp_path / f"{name}.ms")) for name in ("given", "left"))
    for writer in (given, left):
        for start_row, arguments in blocks(1):
            no_flags = {**arguments, "flag": np.zeros_like(arguments["flag"]) if writer is given else None}
            writer.put_rows(start_row, **no_flags)
            writer.flush()
        writer.close()
    assert file_bytes(tmp_path / "left.ms") == file_bytes(tmp_path / "given.ms")
    with table(str(tmp_path / "left.ms"), ack=False, readonly=False) as main:
        assert not main.getcol("FLAG").any()
        np.testing.assert_array_equal(main.getcol("INTERVAL"), INTERVAL_S)
        np.testing.assert_array_equal(main.getcol("EXPOSURE"), INTERVAL_S)
        np.testing.assert_array_equal(main.getcol("SCAN_NUMBER"), 1)
        np.testing.assert_array_equal(main.getcol("STATE_ID"), -1)
        main.putcol("FLAG", np.ones((N_T * N_BL, N_CHAN, 4), bool))  # what a killed run may have left
        main.putcol("INTERVAL", np.zeros(N_T * N_BL))
    writer = MeasurementSetWriter.reopen(tmp_path / "left.ms")
    start_row, arguments = list(blocks(1))[1]
    writer.put_rows(start_row, **{**arguments, "flag": None})
    writer.close()
    with table(str(tmp_path / "left.ms"), ack=False) as main:
        rows = slice(start_row, start_row + len(arguments["times_s"]) * N_BL)
        assert not main.getcol("FLAG")[rows].any() and main.getcol("FLAG")[:start_row].all()
        np.testing.assert_array_equal(main.getcol("INTERVAL")[rows], INTERVAL_S)
