"""Write a byte range of an existing file past the page cache: its whole 4 KiB pages with O_DIRECT, the parts of
a page at either end through the page cache.

On a virtual disk the page cache's writeback is several times slower than direct writes (benchmarks/
bench_io_run.py: `dd conv=fsync` against `dd oflag=direct`). The pages of the range that another writer left in
the page cache (casacore's zero-filled new tiles, see vis.writer) are first punched out of the file, so that
they are dropped, not written back before the direct write. Where the filesystem refuses O_DIRECT (tmpfs on
older kernels) or the hole (NFS), the range goes through the page cache: the same bytes, more slowly.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import numpy as np

from srcnet_sim.fs.extents import UNSUPPORTED, punch_hole

PAGE_BYTES = 4096  # O_DIRECT's alignment of offsets, lengths and memory (a multiple of every device's sector)
BOUNCE_BYTES = 16 << 20  # the largest direct write; values not aligned in memory go through a buffer that is


class DirectFile:
    """An open file whose ranges `write` sends past the page cache where it can (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY)
        try:
            self._direct_fd: int | None = os.open(self.path, os.O_WRONLY | os.O_DIRECT)
        except OSError:
            self._direct_fd = None
        self._bounce = mmap.mmap(-1, BOUNCE_BYTES) if self._direct_fd is not None else None
        self._punches = True
        self.direct_bytes = 0  # what went past the page cache, bytes

    def write(self, offset: int, values: np.ndarray) -> None:
        """Write the bytes of the C-contiguous array `values` at `offset` (the file's size is not changed where it
        reaches further: the writer that extended the file owns it)."""
        data = memoryview(np.ascontiguousarray(values)).cast("B")
        end = offset + len(data)
        first = -(-offset // PAGE_BYTES) * PAGE_BYTES  # the whole pages [first, last)
        last = end // PAGE_BYTES * PAGE_BYTES
        if self._direct_fd is None or last <= first:
            self._buffered(offset, data)
            return
        self._buffered(offset, data[:first - offset])
        if self._punches:
            try:
                punch_hole(self._fd, first, last - first)
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise
                self._punches = False  # the direct write then has the cached pages written back first
        aligned = (np.frombuffer(data, np.uint8, count=1, offset=first - offset).__array_interface__["data"][0]
                   % PAGE_BYTES == 0)  # the values' own memory is aligned as O_DIRECT needs: no copy
        position = first
        while position < last:
            n = min(BOUNCE_BYTES, last - position)
            if aligned:
                source = data[position - offset:position - offset + n]
            else:
                self._bounce[:n] = data[position - offset:position - offset + n]
                source = memoryview(self._bounce)[:n]
            try:
                written = os.pwrite(self._direct_fd, source, position)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._close_direct()  # this filesystem's alignment is another: the rest through the page cache
                break
            self.direct_bytes += written
            position += written
        self._buffered(position, data[position - offset:])

    def close(self) -> None:
        self._close_direct()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _buffered(self, offset: int, data: memoryview) -> None:
        while len(data):
            written = os.pwrite(self._fd, data, offset)
            data, offset = data[written:], offset + written

    def _close_direct(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
        if self._bounce is not None:
            self._bounce.close()
            self._bounce = None
