"""Hostile staging, signals and full volumes, with real processes: concurrent runs into one staging
area, SIGKILL/SIGTERM/SIGINT at chosen moments, links planted at predictable names, tmpfs volumes
that fill up mid-run. (Hostile ingest cases run against a real Rucio in test_rucio_ingest.py.)"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SRC, unpack_ms

SMALL = {"TELESCOPE": "SKA-MID-AA0.5", "NUM_TIME_STAMPS": "3", "SYNTHETIC_SOURCES": "50", "IMAGING_NPIXEL": "64",
         "FILE_PREFIX": "h_", "RUCIO_NAMESPACE": "hostile"}
# 600 steps x 256 channels: a 31 MB MS, some seconds of writing, time to act while the run works.
SLOW = {"NUM_TIME_STAMPS": "600", "FREQ_INC_HZ": "277343.75"}
TAR, META = "h_measurements.ms.tar", "h_measurements.ms.tar.meta"


def environment(out: Path, tmp: Path, **settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "OPENBLAS_CORETYPE")}
    return {**base, "PYTHONPATH": str(SRC), "OUT_DIR": str(out), "TMPDIR": str(tmp), **SMALL, **settings}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", "run", *args], env=env, stderr=stderr,
                                stdout=subprocess.DEVNULL)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.002)


def found(directory: Path, pattern: str) -> bool:
    """Whether a file named like `pattern` is under `directory`, which the run changes meanwhile (os.walk skips a
    directory that vanishes while it is walked, where Path.rglob raises)."""
    return any(fnmatch.filter(names, pattern) for _, _, names in os.walk(directory))


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    return out, tmp


def test_concurrent_runs_claim_their_names_and_never_touch_a_live_run(dirs, tmp_path: Path):
    """A holds its names and its scratch (stopped with SIGSTOP: alive, doing nothing); C wants A's names and
    stops before any work; B, with other names, sweeps the same volumes and leaves A's directories alone."""
    out, tmp = dirs
    staging = out / "hostile"
    a = start(["--vis", "--dirty"], environment(out, tmp, **SLOW), tmp_path / "a.log")
    try:
        wait_for(lambda: any(tmp.glob("srcnet-resume-*/h_measurements.ms")), a, "A's MS")
        a.send_signal(signal.SIGSTOP)
        a_scratch = sorted(tmp.iterdir())
        held = entries(staging)
        assert f".{TAR}.claim" in held and any(n.startswith(".srcnet-sim-partial-") for n in held)

        c = run(["--vis"], environment(out, tmp))
        assert c.returncode == 2, c.stderr
        assert last_line(c.stderr).startswith(f"srcnet-sim: error: FILE_PREFIX: {staging / TAR} is being made by "
                                              f"another run (pid {a.pid} on ")
        b = run(["--vis"], environment(out, tmp, FILE_PREFIX="other_"))
        assert b.returncode == 0, b.stderr
        assert sorted(tmp.iterdir()) == a_scratch  # A's scratch kept, B's removed
        assert set(held) <= set(entries(staging))
    finally:
        a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=300) == 0, (tmp_path / "a.log").read_text()
    assert entries(staging) == sorted(["h_dirty.fits", "h_dirty.fits.meta", TAR, META, "other_measurements.ms.tar",
                                       "other_measurements.ms.tar.meta"])
    assert json.loads((staging / META).read_text())["meta"]["t_xel"] == 600  # A's visibilities, not C's
    assert entries(tmp) == []


def test_a_killed_runs_claims_scratch_and_partial_files_are_taken_over_by_the_next_run(dirs, tmp_path: Path):
    out, tmp = dirs
    staging = out / "hostile"
    a = start(["--vis", "--dirty"], environment(out, tmp, **SLOW), tmp_path / "a.log")
    wait_for(lambda: any(tmp.glob("srcnet-resume-*/h_measurements.ms")), a, "A's MS")
    a.send_signal(signal.SIGKILL)
    a.wait()
    left = entries(staging)
    assert f".{TAR}.claim" in left and any(n.startswith(".srcnet-sim-partial-") for n in left)
    assert len(entries(tmp)) == 2  # its scratch and its resumable state (resume.py)
    b = run(["--vis"], environment(out, tmp, **SLOW))  # A's settings: B resumes A's MS
    assert b.returncode == 0, b.stderr
    assert "left by a run that was killed" in b.stderr and "continuing from there" in b.stderr
    assert entries(staging) == [TAR, META] and entries(tmp) == []


@pytest.mark.parametrize("stop_signal, moment", [
    (signal.SIGTERM, "simulating"),
    (signal.SIGINT, "simulating"),
    (signal.SIGTERM, "staging"),
])
def test_sigterm_and_sigint_end_the_run_with_one_line_and_remove_its_files(dirs, tmp_path: Path, stop_signal, moment):
    out, tmp = dirs
    # While simulating, the signal comes when the MS appears (made empty before the first block), before the first of
    # its 8 blocks (blocks.MIN_BLOCKS) is computed; the main thread acts on it when the kernel call it is in returns,
    # so at most a block or two are done whatever the kernel's speed. The sources make each block take long against
    # this test's own delay in sending the signal on a busy machine.
    busy = {"SYNTHETIC_SOURCES": "3000"} if moment == "simulating" else {}
    proc = start(["--vis"], environment(out, tmp, **SLOW, **busy), tmp_path / "run.log")
    if moment == "simulating":
        wait_for(lambda: any(tmp.glob("srcnet-resume-*/h_measurements.ms")), proc, "the MS")
    else:
        # its sidecar is written, and its tar is being made from the MS's DATA file (products.adopted_tar)
        wait_for(lambda: any(tmp.glob("srcnet-resume-*/adopting.tar")), proc, "the tar in the making")
    proc.send_signal(stop_signal)
    code = proc.wait(timeout=60)
    stderr = (tmp_path / "run.log").read_text()
    assert code == 128 + stop_signal, stderr
    assert last_line(stderr) == (f"srcnet-sim: stopped by {signal.Signals(stop_signal).name}; "
                                 "its scratch and partial files were removed")
    # Only the resumable state (the MS so far, for a rerun with the same settings) is kept: an eviction is not the end.
    assert [name[:len("srcnet-resume-")] for name in entries(tmp)] == ["srcnet-resume-"] and entries(out) == []
    state = next(tmp.iterdir())
    assert sorted(p.name for p in state.iterdir()) == ["ALIVE", "h_measurements.ms", "journal", "state.json"]
    if moment == "staging":  # the tar being made from the MS's DATA file went back into the MS: it is whole
        assert "table.f0_TSM0 put back into" in stderr
        assert (state / "h_measurements.ms" / "table.f0_TSM0").stat().st_size > 30 * 10**6


@pytest.mark.parametrize("plant, args, message", [
    ("claim link", ["--vis"], f"OUT_DIR: {{staging}}/.{TAR}.claim is a symbolic link, not a lock file planted in the staging area"),
    ("product link", ["--vis"], f"OUT_DIR: {{staging}}/{TAR} is a symbolic link, not a staged product"),
    ("meta link", ["--vis", "--overwrite"], f"OUT_DIR: {{staging}}/{META} is a symbolic link, not a staged product"),
    ("claim fifo", ["--vis"], f"OUT_DIR: {{staging}}/.{TAR}.claim is not a regular file planted in the staging area"),
    ("namespace link", ["--vis"], "RUCIO_NAMESPACE: {staging} is a link or not a directory"),
])
def test_links_planted_at_predictable_names_are_refused_before_work(dirs, tmp_path: Path, plant, args, message):
    out, tmp = dirs
    staging = out / "hostile"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    target = {"claim link": staging / f".{TAR}.claim", "product link": staging / TAR, "meta link": staging / META,
              "claim fifo": staging / f".{TAR}.claim", "namespace link": staging}[plant]
    if plant != "namespace link":
        staging.mkdir()
    if plant == "claim fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(victim if plant == "namespace link" else victim / "precious")
    result = run(args, environment(out, tmp))
    assert result.returncode == 2, result.stderr
    assert last_line(result.stderr).startswith("srcnet-sim: error: " + message.format(staging=staging))
    assert entries(victim) == ["precious"] and (victim / "precious").read_text() == "keep me"
    assert entries(tmp) == [] and os.path.lexists(target)


def test_links_and_strangers_beside_the_run_are_neither_followed_nor_removed(dirs, tmp_path: Path):
    out, tmp = dirs
    staging = out / "hostile"
    staging.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "ALIVE").write_text("")
    (victim / "precious").write_text("keep me")
    planted = [staging / ".srcnet-sim-partial-planted", tmp / "srcnet-sim-planted", staging / ".h_other.claim"]
    for link in planted:
        link.symlink_to(victim)
    result = run(["--vis", "--dirty", "--preview-dir", str(tmp_path)], environment(out, tmp))
    assert result.returncode == 0, result.stderr
    assert sorted(entries(victim)) == ["ALIVE", "precious"] and all(p.is_symlink() for p in planted)
    assert [n for n in entries(staging) if not n.startswith(".")] == ["h_dirty.fits", "h_dirty.fits.meta", TAR, META]
    assert (tmp_path / "h_dirty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # previews outside the staging area


def unshare_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to mount test volumes: apt-get install util-linux"
    prefix = [unshare, "-m"] if os.geteuid() == 0 else [unshare, "-Urm"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"cannot make a mount namespace for the tmpfs volumes ({probe.stderr.strip()}): run " \
                                  "the tests as root or enable user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    return prefix


@pytest.mark.parametrize("volume, args, expected", [
    ("TMPDIR", ["--vis"], "srcnet-sim: error: TMPDIR: {root}/tmpdir/srcnet-resume-"),
    ("OUT_DIR", ["--vis", "--dirty"], "srcnet-sim: error: no space left on device"),
])
def test_a_volume_that_fills_up_mid_run_is_one_line_and_leaves_nothing(tmp_path: Path, volume, args, expected):
    """Real tmpfs volumes: casacore would abort (SIGABRT) on a full scratch volume; the run must stop first."""
    env = environment(tmp_path, tmp_path, **SLOW)
    result = subprocess.run([*unshare_prefix(), sys.executable, str(Path(__file__).resolve().parents[1] / "hostile_enospc.py"),
                             str(tmp_path), volume, json.dumps(["run", *args]), json.dumps(env)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["filled"], report["stderr"]
    assert report["returncode"] == 4, report["stderr"]
    assert last_line(report["stderr"]).startswith(expected.format(root=tmp_path))
    assert report["left"] == {"TMPDIR": [], "OUT_DIR": []}


@pytest.mark.parametrize("renameat2", ["kernel", "link fallback"])
def test_publishing_never_replaces_what_is_at_the_final_name(tmp_path: Path, monkeypatch, renameat2):
    from srcnet_sim.products import staging

    if renameat2 == "link fallback":  # filesystems without renameat2 (NFS): link + unlink
        monkeypatch.setattr(staging, "_renameat2", None)
    source = tmp_path / "new"
    source.write_text("new")
    (tmp_path / "file").write_text("theirs")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for taken in ("file", "dangling"):
        with pytest.raises(FileExistsError):
            staging.rename_noreplace(source, tmp_path / taken)
    assert (tmp_path / "file").read_text() == "theirs" and not (tmp_path / "nowhere").exists()
    staging.rename_noreplace(source, tmp_path / "free")
    assert (tmp_path / "free").read_text() == "new" and not source.exists()


def test_a_directory_without_its_lock_file_is_dead_only_when_long_untouched(tmp_path: Path):
    """Killed between mkdir and taking its lock, or left by a srcnet-sim older than the locks (whose live
    runs last hours): removed only after scratch.LOCKLESS_AGE_S."""
    from srcnet_sim.fs import scratch

    old, fresh = tmp_path / "srcnet-sim-old", tmp_path / "srcnet-sim-fresh"
    old.mkdir()
    fresh.mkdir()
    long_ago = time.time() - scratch.LOCKLESS_AGE_S - 60
    os.utime(old, (long_ago, long_ago))
    with scratch.live_directory(tmp_path, scratch.SCRATCH_PREFIX) as live:
        assert scratch.sweep(tmp_path, scratch.SCRATCH_PREFIX) == [old]
        assert live.is_dir() and fresh.is_dir()
    assert not live.exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_product_that_appears_during_the_run_is_never_replaced_without_overwrite(tmp_path: Path, overwrite):
    """A program that writes the staging area without claims puts a complete pair at the name after the check."""
    from srcnet_sim.errors import UserInputError
    from srcnet_sim.products import staging

    private = tmp_path / "private"
    private.mkdir()
    final = tmp_path / "x.fits"
    item = staging.prepare(private, final, staging.text("ours"), lambda path, size: {"name": "x.fits"})
    final.write_text("theirs")
    staging.meta_path(final).write_text("{}")
    if overwrite:
        assert staging.publish(item, overwrite=True) == final
        assert final.read_text() == "ours" and json.loads(staging.meta_path(final).read_text()) == {"name": "x.fits"}
    else:
        with pytest.raises(UserInputError, match="appeared while this run held its claim"):
            staging.publish(item, overwrite=False)
        assert final.read_text() == "theirs" and staging.meta_path(final).read_text() == "{}"
    assert sorted(p.name for p in private.iterdir()) == ([] if overwrite else ["x.fits.meta.partial", "x.fits.partial"])


def test_sigterm_while_imaging_a_cube_stages_nothing_and_the_rerun_makes_the_same_cube(dirs, tmp_path: Path):
    """SIGTERM while the cube's planes are imaged (its partial file exists): one line, the scratch (and the partial
    cube) removed, nothing staged, the MS kept; the rerun with the same settings stages the cube, byte for byte the
    cube of an uninterrupted run."""
    out, tmp = dirs
    cube = {"FREQ_INC_HZ": "277343.75", "IMAGING_NPIXEL": "256", "OBS_ID": "cube-signal"}  # 256 planes: seconds
    proc = start(["--cube"], environment(out, tmp, **cube), tmp_path / "run.log")
    wait_for(lambda: found(tmp, ".h_cube.fits.partial-*"), proc, "the partial cube")
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    stderr = (tmp_path / "run.log").read_text()
    assert code == 128 + signal.SIGTERM, stderr
    assert last_line(stderr).startswith("srcnet-sim: stopped by SIGTERM")
    assert [name[:len("srcnet-resume-")] for name in entries(tmp)] == ["srcnet-resume-"] and entries(out) == []
    rerun = run(["--cube"], environment(out, tmp, **cube))
    assert rerun.returncode == 0, rerun.stderr
    assert entries(out / "hostile") == ["h_cube.fits", "h_cube.fits.meta"] and entries(tmp) == []
    fresh_out, fresh_tmp = tmp_path / "fresh-out", tmp_path / "fresh-tmp"
    fresh_out.mkdir()
    fresh_tmp.mkdir()
    fresh = run(["--cube"], environment(fresh_out, fresh_tmp, **cube))
    assert fresh.returncode == 0, fresh.stderr
    assert (out / "hostile" / "h_cube.fits").read_bytes() == (fresh_out / "hostile" / "h_cube.fits").read_bytes()


def test_sigkill_while_image_reorders_a_cube_leaves_a_directory_the_next_image_removes(dirs, tmp_path: Path):
    """`srcnet-sim image --channels-out 0` (dirty) killed (SIGKILL: no handler runs) while its planes are imaged from the MS's
    reordered Stokes I: the reordering directory stays in TMPDIR, locked by nobody; the next `srcnet-sim image` with
    the same TMPDIR removes it (one warning line), makes its cube and leaves TMPDIR empty."""
    out, tmp = dirs
    made = run(["--vis"], environment(out, tmp, **{**SLOW, "NUM_TIME_STAMPS": "60"}))  # 256 channels
    assert made.returncode == 0, made.stderr
    ms = unpack_ms(out / "hostile" / TAR, tmp_path / "ms")
    image = [sys.executable, "-m", "srcnet_sim.cli", "image", str(ms), "--npixel", "64", "--cellsize-arcsec", "20",
             "--channels-out", "0", "--niter", "0", "--allow-uv-cut", "--no-preview", "--out-dir",
             str(tmp_path / "images")]
    env = environment(out, tmp)
    (tmp_path / "images").mkdir()
    with open(tmp_path / "image.log", "w") as log:
        proc = subprocess.Popen(image, env=env, stderr=log, stdout=subprocess.DEVNULL)
    def planes_written() -> bool:  # a plane past the header: astropy's own mmap probe (a tmp file) is over
        return any(p.stat().st_size > 64 * 64 * 4 for p in (tmp_path / "images").glob(".*.partial-*"))

    wait_for(lambda: found(tmp, "weight-255.npy") and planes_written(), proc, "the reordered files and a plane")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = entries(tmp)
    assert len(left) == 1 and left[0].startswith("srcnet-sim-reorder-") and (tmp / left[0] / "uvw.npy").is_file()
    again = subprocess.run([*image, "--name", "again"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"removed {tmp / left[0]}" in again.stderr and "left by a run that was killed" in again.stderr
    assert entries(tmp) == [] and (tmp_path / "images" / "again-dirty-cube.fits").is_file()
