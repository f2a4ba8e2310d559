"""fs.direct_write and MeasurementSetWriter(direct_data): DATA written past the page cache on ext4 and XFS (loop
volumes made here) and through it on tmpfs, the bytes always those written through casacore."""

from __future__ import annotations

import mmap
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from loop_volumes import loop_volume
from test_writer_process import N_BL, N_CHAN, N_T, blocks, file_bytes, new_ms

from srcnet_sim.fs.direct_write import PAGE_BYTES, DirectFile
from srcnet_sim.vis.writer import MeasurementSetWriter

FILESYSTEMS = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q"]}


@pytest.fixture(params=["ext4", "xfs", "tmpfs"])
def volume(request, tmp_path: Path):
    """(mount point, filesystem name): a loop-mounted ext4 or XFS, or a tmpfs, for the test."""
    if request.param == "tmpfs":
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        mount = tmp_path / "tmpfs"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], check=True)
        try:
            yield mount, "tmpfs"
        finally:
            subprocess.run(["umount", str(mount)], check=True)
        return
    with loop_volume(tmp_path, request.param, FILESYSTEMS[request.param]) as mount:
        yield mount, request.param


def test_ranges_read_back_as_written_and_whole_pages_go_direct(volume):
    """Unaligned ranges that share pages with each other, written over zeros still in the page cache (as casacore
    leaves its new tiles): the file reads back as written; on ext4 and XFS every whole page of each range went
    with O_DIRECT."""
    mount, filesystem = volume
    path = mount / "column"
    size = 5 * 2**20 + 123
    with open(path, "wb") as handle:  # zeros through the page cache, not yet written back
        handle.write(bytes(size))
    rng = np.random.default_rng(3)
    expected = np.zeros(size, dtype=np.uint8)
    # The 2nd's head shares a page with the 1st's tail; the 4th's values are page-aligned in memory (mmap), as
    # shared_empty's blocks are: written from where they are, not through the bounce buffer.
    ranges = [(100, 2 * 2**20 + 5), (2 * 2**20 + 105, 3 * 2**20), (5 * 2**20 + 105, 18), (0, 3 * PAGE_BYTES + 10)]
    target = DirectFile(path)
    whole_pages = 0
    for offset, length in ranges:
        values = rng.integers(0, 256, length, dtype=np.uint8)
        if offset == 0:
            aligned = np.frombuffer(mmap.mmap(-1, length), dtype=np.uint8)
            aligned[:] = values
            values = aligned
        target.write(offset, values)
        expected[offset:offset + length] = values
        end = offset + length
        whole_pages += max(0, end // PAGE_BYTES * PAGE_BYTES - -(-offset // PAGE_BYTES) * PAGE_BYTES)
    target.close()
    assert path.stat().st_size == size
    np.testing.assert_array_equal(np.fromfile(path, dtype=np.uint8), expected)
    if filesystem in ("ext4", "xfs"):
        assert target.direct_bytes == whole_pages > 0


def test_the_ms_data_goes_direct_with_the_bytes_casacore_writes(volume, tmp_path: Path):
    """MeasurementSetWriter(direct_data) against the same rows through casacore (on this test's own volume): the
    main table's files are equal byte for byte; on ext4 and XFS nearly all of DATA went with O_DIRECT."""
    mount, filesystem = volume
    direct = MeasurementSetWriter.reopen(new_ms(mount / "direct.ms"), direct_data=True)
    through = MeasurementSetWriter.reopen(new_ms(tmp_path / "casacore.ms"))
    assert direct._direct is not None and through._direct is None
    for writer in (direct, through):
        for start_row, arguments in blocks(1):
            writer.put_rows(start_row, **arguments)
            writer.flush()
    direct_bytes = direct._direct.direct_bytes
    direct.close()
    through.close()
    assert file_bytes(mount / "direct.ms") == file_bytes(tmp_path / "casacore.ms")
    if filesystem in ("ext4", "xfs"):
        assert direct_bytes > 0.9 * N_T * N_BL * N_CHAN * 4 * 8


def test_tiles_of_a_block_of_channels_stay_with_casacore(tmp_path: Path):
    """Where a tile holds part of a row (channel blocks), row r is not one range of the file: casacore writes DATA."""
    writer = MeasurementSetWriter.reopen(new_ms(tmp_path / "a.ms", tile_channels=N_CHAN // 3), direct_data=True)
    assert writer._direct is None
    writer.close()
