"""The MS's tar made around its DATA file (products.adopted_tar, staging.prepare_adopted): on ext4 and XFS (loop
volumes made here) the same bytes as the copied tar, its data the lead file's own inode (not rewritten); on tmpfs
(no extent shifts) the copy, the same bytes; stopped at any step (no handler running, as SIGKILL) or killed for
real at random moments, restore() gives back the MS byte for byte; and a resumed run finds its MS whole."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from srcnet_sim.fs import extents
from srcnet_sim.products import adopted_tar, aligned_tar, staging
from srcnet_sim.products.aligned_tar import ALIGNMENT, plan_tar, write_aligned_tar
from loop_volumes import loop_volume
from test_aligned_tar import make_tree

LEAD_BYTES = 8 * 2**20 + 4096 * 3 + 17  # the tree's DATA file: not a whole number of blocks


def ms_like(root: Path) -> Path:
    """make_tree's directory with a lead file (the largest, like an MS's DATA column), times fixed."""
    top = make_tree(root)
    lead = top / "table.f1_TSM0"
    lead.write_bytes(np.random.default_rng(2).bytes(LEAD_BYTES))
    os.utime(lead, (1_600_000_000, 1_600_000_000))
    os.utime(top, (1_600_000_000, 1_600_000_000))
    return top


def tree_digest(top: Path) -> dict[str, str]:
    return {str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(top.rglob("*"))
            if p.is_file()}


def copied_tar(source: Path, target: Path) -> bytes:
    with open(target, "wb") as handle:
        write_aligned_tar(source, handle)
    return target.read_bytes()


def physical_blocks(path: Path) -> dict[int, int]:
    """{logical block: physical block} of a file, 4 KiB blocks, from its extent map (filefrag, e2fsprogs)."""
    listing = subprocess.run(["filefrag", "-v", "-b4096", str(path)], check=True, capture_output=True, text=True).stdout
    mapping = {}
    for line in listing.splitlines():
        fields = [field.strip() for field in line.split(":")]
        if len(fields) >= 4 and fields[0].isdigit():
            logical, physical = (int(part.split("..")[0]) for part in fields[1:3])
            for k in range(int(fields[3])):
                mapping[logical + k] = physical + k
    assert mapping, listing
    return mapping


def sidecar(path: Path, size: int) -> dict:
    return {"name": path.name, "size": size}


@pytest.fixture(params=["ext4", "xfs"])
def volume(request, tmp_path: Path):
    """A 512 MiB ext4 or XFS (no reflink: its extents shift, its blocks are not shared) on a loop device."""
    mkfs = ["mkfs.ext4", "-q", "-F", "-b", "4096"] if request.param == "ext4" else ["mkfs.xfs", "-q", "-m", "reflink=0"]
    with loop_volume(tmp_path, request.param, mkfs) as mount:
        yield mount


def staging_dirs(root: Path) -> tuple[Path, Path, Path]:
    """(the MS's parent, the run's state directory holding it, the private staging directory), on `root`."""
    state, private = root / "state", root / "staging" / "private"
    private.mkdir(parents=True)
    state.mkdir()
    return state, state, private


def test_the_tar_made_around_the_data_file_is_the_copied_tar_and_reuses_its_inode(volume: Path, tmp_path: Path):
    parent, state, private = staging_dirs(volume)
    source = ms_like(parent)
    reference = copied_tar(source, tmp_path / "copied.tar")
    layout = plan_tar(source)
    assert layout.lead_member.path.name == "table.f1_TSM0" and layout.lead_member.data_offset % ALIGNMENT == 0
    assert extents.shifts_extents(volume)
    inode = os.stat(source / "table.f1_TSM0").st_ino
    subprocess.run(["sync"], check=True)  # delayed allocation done: the data have their blocks on the device
    blocks = physical_blocks(source / "table.f1_TSM0")
    prepared = staging.prepare_adopted(private, volume / "final.tar", source, state, sidecar, [])
    subprocess.run(["sync"], check=True)
    assert prepared.data.read_bytes() == reference
    assert os.stat(prepared.data).st_ino == inode  # the DATA file became the tar
    shift = layout.lead_member.data_offset // 4096
    after = physical_blocks(prepared.data)
    assert len(blocks) == -(-LEAD_BYTES // 4096)
    assert all(after[logical + shift] == physical for logical, physical in blocks.items())  # not written again
    assert json.loads(prepared.meta.read_text())["size"] == len(reference)
    assert not (source / "table.f1_TSM0").exists() and (state / adopted_tar.MARKER).exists()
    assert adopted_tar.restore(state) is False  # the MS is spent: a resumed run must make it again
    assert not (state / adopted_tar.MARKER).exists()


def test_where_extents_do_not_shift_the_tar_is_copied_with_the_same_bytes(tmp_path: Path):
    shm = Path("/dev/shm")
    assert shm.is_dir()
    root = shm / f"srcnet-sim-test-{uuid.uuid4().hex}"
    try:
        parent, state, private = staging_dirs(root)
        source = ms_like(parent)
        assert not extents.shifts_extents(root)  # tmpfs
        before = tree_digest(source)
        reference = copied_tar(source, tmp_path / "copied.tar")
        prepared = staging.prepare_adopted(private, root / "final.tar", source, state, sidecar, [])
        assert prepared.data.read_bytes() == reference
        assert tree_digest(source) == before and not (state / adopted_tar.MARKER).exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Killed(BaseException):
    """Stands for SIGKILL: raised at a chosen step, with adopt's own clean-up switched off."""


def test_stopped_at_any_step_restore_gives_back_the_ms_and_staging_again_gives_the_same_tar(volume: Path,
                                                                                          tmp_path: Path, monkeypatch):
    parent, state, private = staging_dirs(volume)
    source = ms_like(parent)
    pristine = tree_digest(source)
    reference = copied_tar(source, tmp_path / "copied.tar")
    steps = {"fsync_path": (adopted_tar, adopted_tar.fsync_path), "insert_range": (adopted_tar, adopted_tar.insert_range),
             "write_tar": (adopted_tar, adopted_tar.write_tar), "_pwrite_all": (aligned_tar, aligned_tar._pwrite_all),
             "copy_range": (aligned_tar, aligned_tar.copy_range)}
    calls = {"n": 0, "kill_at": 0}

    def counted(name, original):
        def step(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == calls["kill_at"]:
                raise Killed(name)
            return original(*args, **kwargs)
        return step

    real_restore = adopted_tar.restore
    moments = []
    for kill_at in range(1, 1000):
        with monkeypatch.context() as patch:
            for name, (module, original) in steps.items():
                patch.setattr(module, name, counted(name, original))
            patch.setattr(adopted_tar, "restore", lambda workdir: True)  # no clean-up runs under SIGKILL
            calls.update(n=0, kill_at=kill_at)
            try:
                adopted = adopted_tar.adopt(plan_tar(source), source, state, private)
            except Killed as stop:
                moments.append(str(stop))
            else:
                break  # the tar was finished before the kill_at-th step: every step has been tried
        assert real_restore(state) is True, moments[-1]
        assert tree_digest(source) == pristine, f"after a kill at {moments[-1]} (step {kill_at})"
        assert not (state / adopted_tar.IN_PROGRESS).exists() and not (state / adopted_tar.MARKER).exists()
    assert {"fsync_path", "insert_range", "write_tar", "_pwrite_all", "copy_range"} <= set(moments), moments
    assert adopted.read_bytes() == reference  # finished by the last try, after all the stops before it


KILLED_ADOPTION = """
import sys
from pathlib import Path
from srcnet_sim.products import adopted_tar
from srcnet_sim.products.aligned_tar import plan_tar
source, state, private = (Path(p) for p in sys.argv[1:4])
print("start", flush=True)
adopted_tar.adopt(plan_tar(source), source, state, private)
print("done", flush=True)
"""


def test_sigkill_at_random_moments_of_a_real_adoption_then_restore_gives_back_the_ms(volume: Path):
    """A real process adopting an MS with 144 MiB of other files to copy around its DATA (so that the adoption lasts
    long enough to be hit), SIGKILLed at seeded random points of its progress: restore() always brings back the MS."""
    parent, state, private = staging_dirs(volume)
    source = ms_like(parent)
    rng = np.random.default_rng(3)
    for i in range(3):
        (source / f"table.f{10 + i}_TSM0").write_bytes(rng.bytes(48 * 2**20 - 5))
    lead = source / "table.f0_TSM0"  # now the largest
    lead.write_bytes(rng.bytes(56 * 2**20))
    pristine = tree_digest(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    chance = random.Random(20261207)
    layout = plan_tar(source)
    data_bytes = layout.lead_member.size
    hits = 0
    for attempt in range(5):
        subprocess.run(["sync"], check=True)
        proc = subprocess.Popen([sys.executable, "-c", KILLED_ADOPTION, str(source), str(state), str(private)],
                                env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "start\n"
        # The kill comes once the tar in the making (the DATA file, shifted, then growing as the other files are
        # written after it) reaches a seeded fraction of its final size.
        threshold = data_bytes + chance.uniform(0.0, 1.0) * (layout.size - data_bytes)
        while proc.poll() is None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(state / adopted_tar.IN_PROGRESS).st_size >= threshold:
                    break
            time.sleep(0.0002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        hits += proc.returncode == -signal.SIGKILL and (state / adopted_tar.MARKER).exists()
        assert adopted_tar.restore(state) is True
        assert tree_digest(source) == pristine, f"attempt {attempt}"
    assert hits >= 3  # most kills fell inside the adoption, not before or after it


def test_a_resumed_run_puts_the_data_file_back_before_it_counts_its_time_steps(volume: Path, monkeypatch):
    """resume.run_state on a state whose MS's DATA was half made into a tar, its volume mounted elsewhere since: the
    MS is whole again and resumed."""
    from srcnet_sim.run import resume

    tmp_path = volume
    product_dir = tmp_path / "out"
    product_dir.mkdir()
    wanted = {"obs_id": "x"}
    with resume.run_state(tmp_path, product_dir, "p_", wanted, "p_measurements.ms", 4, 2, False) as state:
        source = ms_like(state.directory)
        (source.parent / "measurements.ms").rename(state.directory / "p_measurements.ms")
        source = state.directory / "p_measurements.ms"
        state.record(0, 4, 0, 2)
    pristine = tree_digest(source)
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(adopted_tar, "restore", lambda workdir: True)
    monkeypatch.setattr(adopted_tar, "write_tar", lambda *args, **kwargs: (_ for _ in ()).throw(Killed("write_tar")))
    with pytest.raises(Killed):
        adopted_tar.adopt(plan_tar(source), source, state.directory, private)
    monkeypatch.undo()
    assert not (source / "table.f1_TSM0").exists()
    moved = tmp_path / "remounted"  # the next pod mounts the scratch volume elsewhere
    moved.mkdir()
    state.directory.rename(moved / state.directory.name)
    with resume.run_state(moved, product_dir, "p_", wanted, "p_measurements.ms", 4, 2, False) as state:
        assert state.resumed and state.time_steps_done == 4
        assert tree_digest(state.directory / "p_measurements.ms") == pristine


def test_volumes_on_a_filesystem_that_shifts_extents_need_the_ms_data_once(volume: Path, monkeypatch):
    """OUT_DIR and TMPDIR on one ext4 or XFS (no reflink): the MS's DATA (spent_bytes) is not counted twice; on
    tmpfs, which shifts no extents, the sum is still asked."""
    from srcnet_sim.errors import UserInputError
    from srcnet_sim.run import preflight

    monkeypatch.setattr(preflight, "free_bytes", lambda path: 150)
    shm = Path("/dev/shm") / f"srcnet-sim-test-{uuid.uuid4().hex}"
    try:
        for root in (volume, shm):
            (root / "out").mkdir(parents=True)
            (root / "scratch").mkdir()
        args = dict(copied_bytes=100, spent_bytes=80)
        assert preflight.volume_problems(volume / "out", 100, "x.ms.tar", volume / "scratch", 100, "x.ms",
                                         **args) == {"OUT_DIR": None, "TMPDIR": None}
        problem = preflight.volume_problems(shm / "out", 100, "x.ms.tar", shm / "scratch", 100, "x.ms", **args)["OUT_DIR"]
        assert isinstance(problem, UserInputError) and "need about 200 B" in str(problem)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
