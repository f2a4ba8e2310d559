"""Shift a file's data by whole filesystem blocks without rewriting them: fallocate(2) with FALLOC_FL_INSERT_RANGE
(a hole of `length` bytes opens at `offset`, the data after it move up) and FALLOC_FL_COLLAPSE_RANGE (the reverse).
Only the file's extent map changes. ext4 and XFS support both; tmpfs, btrfs, NFS and most others refuse them
(EOPNOTSUPP), as does any offset or length that is not a multiple of the filesystem's block (EINVAL).
Also FALLOC_FL_PUNCH_HOLE, which frees a range of a file (and drops its pages from the page cache unwritten).
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from pathlib import Path

FALLOC_FL_KEEP_SIZE = 0x01  # linux/falloc.h
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_INSERT_RANGE = 0x20
# What a filesystem answers when it cannot shift extents (or not by this length): the file is unchanged.
UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.EPERM}
PROBE_BYTES = 4096  # the block of ext4 and XFS as usually made; the probe shifts a file by one

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = getattr(_libc, "fallocate64", None) or getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    _fallocate.restype = ctypes.c_int


def _shift(fd: int, mode: int, offset: int, length: int) -> None:
    if _fallocate is None:
        raise OSError(errno.ENOSYS, "fallocate is not available on this system")
    if _fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def insert_range(fd: int, offset: int, length: int) -> None:
    """Open a hole of `length` bytes (reading as zeros) at `offset` of the open file `fd` (offset < its size), the
    data from `offset` on moving `length` bytes further. OSError with an errno in UNSUPPORTED when the filesystem
    cannot (the file unchanged)."""
    _shift(fd, FALLOC_FL_INSERT_RANGE, offset, length)


def collapse_range(fd: int, offset: int, length: int) -> None:
    """Remove bytes [offset, offset + length) of the open file `fd` (offset + length < its size), the data after
    them moving down: the inverse of insert_range."""
    _shift(fd, FALLOC_FL_COLLAPSE_RANGE, offset, length)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Free bytes [offset, offset + length) of the open file `fd`, which then read as zeros (its size kept); their
    pages leave the page cache without being written. OSError with an errno in UNSUPPORTED where the filesystem
    cannot."""
    _shift(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)


def shifts_extents(directory: Path, length: int = PROBE_BYTES) -> bool:
    """Whether files in `directory` (existing, writable) take insert_range of `length` bytes: a probe file of two
    such lengths, shifted by one and removed at once."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".srcnet-sim-extents-") as probe:
            probe.write(b"\1" * (2 * length))
            probe.flush()
            insert_range(probe.fileno(), 0, length)
    except OSError:
        return False
    return True
