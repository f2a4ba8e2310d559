"""An uncompressed POSIX (pax) tar of a directory whose files' data start on 4 KiB boundaries of the tar, copied in
the kernel (fs.filecopy): on a filesystem that shares blocks (XFS with reflink, btrfs) and when the directory and
the tar are on the same one, the tar's data blocks are the directory's own, so staging a MeasurementSet rewrites
no byte of it; elsewhere the copy is the kernel's, without passing through Python.

The alignment comes from the pax standard itself: each file's extended header carries a `comment` record (ignored
by readers, POSIX.1-2001 pax) just long enough to end the header on a boundary. Any tar reader (GNU tar, bsdtar,
Python's tarfile) reads the result as a tar of the same members, names, modes and times; only the padding
differs from `tarfile.add`'s. Members are in tarfile.add's order (each directory, then its entries sorted).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from srcnet_sim.fs.filecopy import copy_range

ALIGNMENT = 4096  # the filesystem block that reflinks share: data offsets in the tar are multiples of it
MAX_COMMENT = 2 * ALIGNMENT  # enough to reach the next boundary from any header length


def write_aligned_tar(source: Path, handle: BinaryIO) -> dict[str, int]:
    """Write the tar of directory `source` (top member named source.name) to `handle` (a file opened for binary
    writing at offset 0). Returns {"kernel": bytes copied by copy_file_range, "read/write": bytes by the fallback}.
    """
    archive = tarfile.TarFile(fileobj=_NullFile(), mode="w", format=tarfile.PAX_FORMAT)  # only for gettarinfo
    offset, copied = 0, {"kernel": 0, "read/write": 0}
    for path, name in _members(source):
        info = archive.gettarinfo(str(path), arcname=name)
        header = _header(info, offset) if info.isreg() and info.size > 0 else info.tobuf(*_FORMAT)
        handle.write(header)
        offset += len(header)
        if info.isreg() and info.size > 0:
            handle.flush()
            with open(path, "rb") as data:
                copied[copy_range(data.fileno(), handle.fileno(), info.size, 0, offset)] += info.size
            offset += info.size
            handle.seek(offset)
            padding = -info.size % tarfile.BLOCKSIZE
            handle.write(b"\0" * padding)
            offset += padding
    end = 2 * tarfile.BLOCKSIZE
    end += -(offset + end) % tarfile.RECORDSIZE
    handle.write(b"\0" * end)
    return copied


_FORMAT = (tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _members(source: Path):
    """(path, arcname) of `source` and everything under it, in tarfile.add's order (a directory, then its entries
    sorted by name, depth first; links not followed)."""
    def walk(path: Path, name: str):
        yield path, name
        if path.is_dir() and not path.is_symlink():
            for entry in sorted(os.listdir(path)):
                yield from walk(path / entry, f"{name}/{entry}")
    return walk(source, source.name)


def _header(info: tarfile.TarInfo, offset: int) -> bytes:
    """info's header, padded with a pax comment so that the member's data begins on an ALIGNMENT boundary when
    the header is written at `offset`. The header grows by whole 512-byte blocks with the comment's length, so
    the shortest comment that reaches the boundary gives it exactly (bisection)."""
    def header(comment_bytes: int) -> bytes:
        info.pax_headers = {**base, "comment": "x" * comment_bytes} if comment_bytes else dict(base)
        return info.tobuf(*_FORMAT)

    base = dict(info.pax_headers)
    plain = header(0)
    if (offset + len(plain)) % ALIGNMENT == 0:
        return plain
    least = len(header(1))
    target = least + (-(offset + least) % ALIGNMENT)
    low, high = 1, MAX_COMMENT
    while low < high:
        middle = (low + high) // 2
        if len(header(middle)) >= target:
            high = middle
        else:
            low = middle + 1
    padded = header(low)
    assert (offset + len(padded)) % ALIGNMENT == 0, "a pax header that does not reach the boundary"
    return padded


class _NullFile:
    """A file that takes writes and keeps nothing (the TarFile made for gettarinfo writes nothing either)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def tell(self) -> int:
        return 0
