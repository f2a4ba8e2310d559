"""Resume: a run killed (SIGKILL at random, seeded moments) or stopped (SIGTERM, as an eviction) continues when
started again with the same settings and writes the same MS as an uninterrupted run; other settings are
refused with one line unless --restart."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from block_runs import assert_identical, environment, fresh_dirs, run, staged_columns

# AA2 (2,016 baselines), 64 dumps x 16 channels, 1,200 sources (and SMALL's noise, gains and MODEL_DATA); a
# MEMORY_LIMIT that leaves room for blocks of 2 dumps: 32 blocks of some 40 ms each, each journaled once written (enough work that no attempt ends before its kill).
LONGER = {"TELESCOPE": "SKA-MID-AA2", "NUM_TIME_STAMPS": "64", "SYNTHETIC_SOURCES": "1200", "WORKER_THREADS": "1",
          "MEMORY_LIMIT": "375MiB"}
LONGER_BLOCKS = "32 blocks of 2 time steps x 16 channels"
BLOCK_UNITS = 2 * 16  # time steps x channels of one of LONGER's blocks


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """The run in a process group of its own (with its Dask workers, if any), as a pod's processes are."""
    with open(log, "w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", *args], env=env, stderr=stderr,
                                stdout=subprocess.DEVNULL, start_new_session=True)


def journal_lines(tmp: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in tmp.glob("srcnet-resume-*/journal"))


def journal_units(tmp: Path) -> int:
    """Time steps x channels that the journals say are written. Unlike their lines, this does not drop when a resumed
    run compacts its journal into one line (for blocks of all channels, as LONGER's); a torn last line counts 0."""
    units = 0
    for path in tmp.glob("srcnet-resume-*/journal"):
        for line in path.read_text().splitlines():
            try:
                t0, t1, c0, c1 = (int(field) for field in line.split())
            except ValueError:
                continue
            units += (t1 - t0) * (c1 - c0)
    return units


def interrupt_after(env: dict[str, str], tmp: Path, log: Path, blocks: int, delay_s: float, stop: int,
                    whole_group: bool = False) -> str:
    """Start a run, wait until its journal says `blocks` more of LONGER's blocks are written than now, wait `delay_s`,
    send `stop` (to every process of the run with `whole_group`, as an eviction does); the run's stderr (or '' when it
    finished first)."""
    before = journal_units(tmp)
    proc = start(env, log)
    deadline = time.monotonic() + 120
    while journal_units(tmp) < before + blocks * BLOCK_UNITS and proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.001)
    time.sleep(delay_s)
    if proc.poll() is None:
        if whole_group:
            os.killpg(proc.pid, stop)
        else:
            proc.send_signal(stop)
    proc.wait(timeout=60)
    return log.read_text() if proc.returncode != 0 else ""


def reference(tmp_path: Path) -> dict:
    out, tmp = fresh_dirs(tmp_path, "reference")
    result = run(["--vis"], environment(out, tmp, **LONGER))
    assert result.returncode == 0, result.stderr
    assert LONGER_BLOCKS in result.stderr  # the block shape the kills are timed by
    return staged_columns(out, tmp_path / "reference-ms")


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_ms(tmp_path: Path):
    expected = reference(tmp_path)
    out, tmp = fresh_dirs(tmp_path, "killed")
    env = environment(out, tmp, **LONGER)
    chance = random.Random(20261126)
    kills = 0
    for attempt in range(3):
        stderr = interrupt_after(env, tmp, tmp_path / f"attempt{attempt}.log", chance.randint(1, 8),
                                 chance.uniform(0.0, 0.05), signal.SIGKILL)
        kills += bool(stderr) or not (out / "blocks" / "b_measurements.ms.tar").exists()
    assert kills == 3
    written = journal_lines(tmp)
    final = run(["--vis"], env)
    assert final.returncode == 0, final.stderr
    assert "resume: " in final.stderr and "continuing from there" in final.stderr
    assert "left by a run that was killed" in final.stderr  # the killed runs' scratch swept, their state adopted
    assert written > 0
    assert sorted(p.name for p in tmp.iterdir()) == []  # the state is removed once staged
    assert_identical(expected, staged_columns(out, tmp_path / "resumed-ms"))


def test_a_dask_run_killed_with_its_workers_resumes_to_the_uninterrupted_ms(tmp_path: Path):
    """EXECUTOR=dask on a LocalCluster of two worker processes: SIGKILL to the run and its workers at once (a node
    lost), then the same settings again: the blocks already written are skipped and the MS equals the local run's."""
    expected = reference(tmp_path)
    out, tmp = fresh_dirs(tmp_path, "dask-killed")
    env = environment(out, tmp, **{**LONGER, "EXECUTOR": "dask", "DASK_WORKERS": "2"})
    stderr = interrupt_after(env, tmp, tmp_path / "dask-killed.log", 4, 0.0, signal.SIGKILL, whole_group=True)
    assert stderr != "" or not (out / "blocks" / "b_measurements.ms.tar").exists(), "the run ended before its kill"
    written = journal_lines(tmp)
    assert 4 <= written < 32
    resumed = run(["--vis"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing from there" in resumed.stderr and "left by a run that was killed" in resumed.stderr
    assert sorted(p.name for p in tmp.iterdir()) == []
    assert_identical(expected, staged_columns(out, tmp_path / "dask-resumed-ms"))


def test_sigterm_keeps_the_state_the_next_pod_resumes_it_and_other_settings_are_refused(tmp_path: Path):
    expected = reference(tmp_path)
    out, tmp = fresh_dirs(tmp_path, "evicted")
    env = {k: v for k, v in environment(out, tmp, **LONGER).items() if k != "OBS_ID"}  # a new default id each time
    stderr = interrupt_after(env, tmp, tmp_path / "evicted.log", 2, 0.0, signal.SIGTERM)
    lines = stderr.strip().splitlines()
    assert lines[-1] == "srcnet-sim: stopped by SIGTERM; its scratch and partial files were removed"
    assert "(the MS written so far): run again with the same settings to continue, or with --restart" in stderr
    states = sorted(p.name for p in tmp.iterdir())
    assert len(states) == 1 and states[0].startswith("srcnet-resume-")
    assert list(out.iterdir()) == []  # nothing staged, the empty staging directory removed

    other = run(["--vis"], {**env, "SEED": "7"})
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1] == (
        f"srcnet-sim: error: --restart: {tmp / states[0]} holds an interrupted run of b_measurements.ms with other "
        "settings (SEED differ); run again with its settings to resume it, or add --restart to discard it and start over")

    resumed = run(["--vis"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing from there" in resumed.stderr
    assert sorted(p.name for p in tmp.iterdir()) == []
    assert_identical(expected, staged_columns(out, tmp_path / "resumed-ms"))


def test_restart_discards_an_interrupted_run_with_other_settings(tmp_path: Path):
    out, tmp = fresh_dirs(tmp_path, "restart")
    env = environment(out, tmp, **LONGER)
    interrupt_after(env, tmp, tmp_path / "first.log", 1, 0.0, signal.SIGKILL)
    assert journal_lines(tmp) >= 1
    restarted = run(["--vis", "--restart"], {**env, "NUM_TIME_STAMPS": "8"})
    assert restarted.returncode == 0, restarted.stderr
    assert "continuing from there" not in restarted.stderr
    columns = staged_columns(out, tmp_path / "restarted-ms")
    assert len(set(columns["TIME"])) == 8


def test_abandoned_states_are_swept_but_live_and_recent_ones_kept(tmp_path: Path):
    """A state nobody touched for a week and no run holds is removed; a recent one and a locked old one stay."""
    import fcntl
    import os

    from srcnet_sim.run import resume

    def make_state(name: str, age_s: float) -> Path:
        directory = tmp_path / f"{resume.STATE_PREFIX}{name}"
        (directory / "measurements.ms").mkdir(parents=True)
        for file in (resume.ALIVE, resume.JOURNAL, resume.STATE_FILE):
            (directory / file).write_text("")
        stamp = time.time() - age_s
        for path in (directory / "measurements.ms", *(directory / f for f in (resume.ALIVE, resume.JOURNAL, resume.STATE_FILE)), directory):
            os.utime(path, (stamp, stamp))
        return directory

    old, recent, held = make_state("old", 8 * 86400), make_state("recent", 3600), make_state("held", 8 * 86400)
    fd = os.open(held / resume.ALIVE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live run holds it (flock is per open file description)
    try:
        removed = resume.sweep_abandoned(tmp_path)
    finally:
        os.close(fd)
    assert removed == [old] and not old.exists()
    assert recent.is_dir() and held.is_dir()


def test_msv4_killed_twice_then_resumed_is_the_uninterrupted_store_byte_for_byte(tmp_path: Path):
    """VIS_FORMAT=both: SIGKILL at two moments (nothing is staged, neither format), then the same settings again:
    the staged zip of the MSv4 equals an uninterrupted run's byte for byte, its MSv2 equals column for column; a
    chunk write the kill left unfinished (zarr's temporary file) is removed, not staged."""
    msv4 = "b_measurements.ps.zarr.zip"
    shared_out = tmp_path / "out"  # OUT_DIR is a setting, in both formats' history: the same for both runs
    shared_out.mkdir()
    _, tmp = fresh_dirs(tmp_path, "reference")
    env = environment(shared_out, tmp, **LONGER, VIS_FORMAT="both")
    result = run(["--vis"], env)
    assert result.returncode == 0, result.stderr
    expected_zip = (shared_out / "blocks" / msv4).read_bytes()
    expected_ms = staged_columns(shared_out, tmp_path / "reference-ms")
    shutil.rmtree(shared_out / "blocks")
    _, tmp = fresh_dirs(tmp_path, "killed")
    env = environment(shared_out, tmp, **LONGER, VIS_FORMAT="both")
    for attempt, (blocks, delay_s) in enumerate(((3, 0.01), (5, 0.0))):
        stderr = interrupt_after(env, tmp, tmp_path / f"attempt{attempt}.log", blocks, delay_s, signal.SIGKILL)
        assert stderr != "", "the run ended before its kill"
        staged = [p.name for p in (shared_out / "blocks").iterdir()] if (shared_out / "blocks").exists() else []
        assert not [name for name in staged if not name.startswith(".")], staged  # nothing staged, even partly
    # what zarr leaves when a kill comes inside a chunk's write (<chunk>.<uuid>.partial; seen in about 1 run in 8)
    store = next(tmp.glob("srcnet-resume-*/b_measurements.ps.zarr"))
    leftover = next(store.glob("*/VISIBILITY/c/*/0/0/0")).with_name("0.0123456789abcdef0123456789abcdef.partial")
    leftover.write_bytes(b"half a chunk")
    final = run(["--vis"], env)
    assert final.returncode == 0, final.stderr
    assert "continuing from there" in final.stderr and f"msv4: removed {leftover}" in final.stderr
    assert (shared_out / "blocks" / msv4).read_bytes() == expected_zip
    assert_identical(expected_ms, staged_columns(shared_out, tmp_path / "resumed-ms"))
    assert sorted(p.name for p in tmp.iterdir()) == []
