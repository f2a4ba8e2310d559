"""The staged tar (products.aligned_tar): a tar that GNU tar and Python's tarfile read as tarfile.add's tar of the
same directory, its files' data on 4 KiB boundaries, the same bytes whichever way the kernel copies them (in the
kernel, the read/write fallback, across filesystems), and on a filesystem that shares blocks (XFS, reflink=1, a
loop device made here) a tar that takes next to no space beside its MS."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from loop_volumes import loop_volume
from srcnet_sim.fs import filecopy
from srcnet_sim.products import staging
from srcnet_sim.products.aligned_tar import ALIGNMENT, write_aligned_tar

SIZES = [0, 1, 511, 512, 4095, 4096, 4097, 3 * 2**20 + 17]


def make_tree(root: Path) -> Path:
    """A directory like an MS: nested tables, files of awkward sizes, an empty one, a long non-ASCII name (a pax
    header of its own), fixed times."""
    rng = np.random.default_rng(5)
    top = root / "measurements.ms"
    (top / "ANTENNA").mkdir(parents=True)
    (top / "empty_table").mkdir()
    for i, size in enumerate(SIZES):
        (top / f"table.f{i}").write_bytes(rng.bytes(size))
    (top / "ANTENNA" / "table.dat").write_bytes(rng.bytes(10_000))
    (top / ("ä" * 120 + ".txt")).write_bytes(b"long name\n")
    for path in [top, *top.rglob("*")]:
        os.utime(path, (1_600_000_000, 1_600_000_000))
    return top


def aligned_tar_bytes(source: Path, target: Path) -> tuple[bytes, dict[str, int]]:
    with open(target, "wb") as handle:
        copied = write_aligned_tar(source, handle)
    return target.read_bytes(), copied


def test_tar_readers_see_tarfiles_members_and_the_data_is_aligned(tmp_path: Path):
    source = make_tree(tmp_path / "src")
    ours = tmp_path / "ours.tar"
    aligned_tar_bytes(source, ours)
    reference = tmp_path / "tarfile.tar"
    with tarfile.open(reference, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(source, arcname=source.name)

    def listing(path: Path) -> list[tuple]:
        with tarfile.open(path) as archive:
            return [(m.name, m.type, m.mode, m.mtime, m.size, m.uid, m.gid) for m in archive.getmembers()]

    # tarfile.add's members, but the top directory's largest file (the lead: an MS's DATA) right after the directory
    expected = listing(reference)
    lead = next(m for m in expected if m[0] == f"{source.name}/table.f7")
    assert listing(ours) == [expected[0], lead, *(m for m in expected[1:] if m != lead)]
    with tarfile.open(ours) as archive:
        data = [m for m in archive.getmembers() if m.isreg() and m.size > 0]
        assert data and all(m.offset_data % ALIGNMENT == 0 for m in data)
    assert ours.stat().st_size % tarfile.RECORDSIZE == 0
    for name, path in (("gnu", ours), ("reference", reference)):
        (tmp_path / name).mkdir()
        subprocess.run(["tar", "-xf", str(path), "-C", str(tmp_path / name)], check=True)
    compare = subprocess.run(["diff", "-r", str(tmp_path / "gnu" / source.name), str(source)], capture_output=True,
                             text=True)
    assert compare.returncode == 0, compare.stdout
    gnu_listing = [sorted(subprocess.run(["tar", "-tvf", str(path)], check=True, capture_output=True,
                                         text=True).stdout.splitlines())
                   for path in (ours, reference)]  # names, modes, owners, sizes and times as GNU tar reads them
    assert gnu_listing[0] == gnu_listing[1] and len(gnu_listing[0]) == len(SIZES) + 5


def test_the_same_bytes_whichever_way_the_data_is_copied(tmp_path: Path, monkeypatch):
    source = make_tree(tmp_path / "src")
    kernel, how = aligned_tar_bytes(source, tmp_path / "kernel.tar")
    assert how["kernel"] == sum(SIZES) + 10_000 + 10 and how["read/write"] == 0 and how["in place"] == 0
    tars = {"kernel": kernel}
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:  # another filesystem (tmpfs)
        other = shm / f"srcnet-sim-test-{uuid.uuid4().hex}"
        try:
            shutil.copytree(source, other / source.name)  # copytree keeps the times
            tars["across filesystems"], _ = aligned_tar_bytes(other / source.name, tmp_path / "across.tar")
        finally:
            shutil.rmtree(other, ignore_errors=True)
    monkeypatch.setattr(filecopy, "copy_file_range", None)
    tars["read/write"], how = aligned_tar_bytes(source, tmp_path / "fallback.tar")
    assert how["kernel"] == 0 and how["read/write"] == sum(SIZES) + 10_000 + 10
    assert all(data == kernel for data in tars.values()), [name for name, data in tars.items() if data != kernel]


def test_a_source_shorter_than_its_size_is_an_error_not_a_short_tar(tmp_path: Path):
    source = tmp_path / "a"
    source.write_bytes(b"x" * 100)
    with open(source, "rb") as data, open(tmp_path / "b", "wb") as target:
        with pytest.raises(EOFError, match="after 100 of 200 bytes"):
            filecopy.copy_range(data.fileno(), target.fileno(), 200, 0, 0)


@pytest.fixture
def xfs_volume(tmp_path: Path):
    """A 512 MiB XFS (reflink=1) on a loop device, mounted for the test."""
    with loop_volume(tmp_path, "xfs", ["mkfs.xfs", "-q", "-m", "reflink=1"]) as mount:
        yield mount


def test_on_a_reflink_filesystem_the_staged_tar_shares_the_ms_blocks(tmp_path: Path, xfs_volume: Path):
    """staging.prepare of an MS's tar (as `run` stages it) on the MS's own XFS: the tar's data take no new blocks
    (free space falls by the headers only), and its bytes equal the tar made on this test's ext4/tmp volume."""
    source = make_tree(xfs_volume / "scratch")
    big = source / "table.f7"  # data that a copy would have to write
    big.write_bytes(np.random.default_rng(1).bytes(64 * 2**20))
    os.utime(big, (1_600_000_000, 1_600_000_000))
    private = xfs_volume / "staging"
    private.mkdir()
    subprocess.run(["sync"], check=True)
    free_before = shutil.disk_usage(xfs_volume).free
    prepared = staging.prepare(private, xfs_volume / "final.tar", staging.tar_directory(source), None)
    subprocess.run(["sync"], check=True)
    taken = free_before - shutil.disk_usage(xfs_volume).free
    size = prepared.data.stat().st_size
    assert size > 64 * 2**20 and taken < 2 * 2**20, (size, taken)
    elsewhere = tmp_path / "copy"
    shutil.copytree(source, elsewhere / source.name)
    assert aligned_tar_bytes(elsewhere / source.name, tmp_path / "ext4.tar")[0] == prepared.data.read_bytes()


def test_volumes_sharing_a_reflink_filesystem_need_the_copies_once(tmp_path: Path, xfs_volume: Path, monkeypatch):
    """OUT_DIR and TMPDIR on one filesystem that shares blocks: the staged tar of the MS needs no space of its own
    (the sum less the copies); on this test's own volume (ext4 or tmpfs: no sharing) the sum is still asked."""
    from srcnet_sim.errors import UserInputError
    from srcnet_sim.fs.filecopy import shares_blocks
    from srcnet_sim.run import preflight

    monkeypatch.setattr(preflight, "free_bytes", lambda path: 150)
    for root in (xfs_volume, tmp_path):
        (root / "out").mkdir()
        (root / "scratch").mkdir()
    assert shares_blocks(xfs_volume) and not shares_blocks(tmp_path)
    args = (100, "x.ms.tar", xfs_volume / "scratch", 100, "x.ms")
    assert preflight.volume_problems(xfs_volume / "out", *args, copied_bytes=100) == {"OUT_DIR": None, "TMPDIR": None}
    problems = preflight.volume_problems(tmp_path / "out", 100, "x.ms.tar", tmp_path / "scratch", 100, "x.ms",
                                         copied_bytes=100)
    assert isinstance(problems["OUT_DIR"], UserInputError) and "need about 200 B" in str(problems["OUT_DIR"])
