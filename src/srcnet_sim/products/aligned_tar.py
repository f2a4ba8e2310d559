"""An uncompressed POSIX (pax) tar of a directory whose files' data start on 4 KiB boundaries of the tar, laid out
before a byte is written (plan_tar), so that it can be made two ways with the same bytes:

- copied (write_tar): each file's data copied in the kernel (fs.filecopy). On a filesystem that shares blocks
  (XFS with reflink, btrfs), with the directory and the tar on the same one, the tar's data blocks are the
  directory's own; elsewhere the copy is the kernel's, without passing through Python.
- around its lead (write_tar with lead_in_place): the directory's largest file (a MeasurementSet's DATA column,
  most of its bytes) becomes the tar itself: its data are shifted up by the headers in front of them without being
  rewritten (fs.extents.insert_range, ext4 and XFS), and everything else is written around them. See
  products.adopted_tar.

The alignment comes from the pax standard itself: each file's extended header carries a `comment` record (ignored
by readers, POSIX.1-2001 pax) just long enough to end the header on a boundary. Any tar reader (GNU tar, bsdtar,
Python's tarfile) reads the result as a tar of the same members, names, modes and times as tarfile.add's; only the
padding and the order differ: the top directory, then its lead, then the other members in tarfile.add's order
(each directory, then its entries sorted, depth first).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from srcnet_sim.fs.filecopy import copy_range

ALIGNMENT = 4096  # the filesystem block that reflinks share and extents shift by: data offsets are multiples of it
MAX_COMMENT = 2 * ALIGNMENT  # enough to reach the next boundary from any header length
ZEROS = bytes(tarfile.RECORDSIZE)


@dataclass(frozen=True)
class Member:
    """One member of the tar: its file, its header (written at `offset`, bytes of the tar) and its data's size."""

    path: Path
    header: bytes
    offset: int
    size: int  # data bytes: 0 for directories and empty files

    @property
    def data_offset(self) -> int:
        return self.offset + len(self.header)

    @property
    def end(self) -> int:
        """Where the next member's header begins: after the data, padded to a 512-byte block."""
        return self.data_offset + self.size + (-self.size % tarfile.BLOCKSIZE)


@dataclass(frozen=True)
class TarLayout:
    """Every member in order and the tar's size in bytes (the two zero blocks and the record padding included);
    `lead`: the index of the top directory's largest file (the member right after the directory), or None when it
    holds none."""

    members: tuple[Member, ...]
    size: int
    lead: int | None

    @property
    def lead_member(self) -> Member | None:
        return None if self.lead is None else self.members[self.lead]


def plan_tar(source: Path) -> TarLayout:
    """The layout of the tar of directory `source` (top member named source.name), from the files' present sizes,
    modes and times (which must not change before it is written)."""
    archive = tarfile.TarFile(fileobj=_NullFile(), mode="w", format=tarfile.PAX_FORMAT)  # only for gettarinfo
    paths = list(_members(source))
    lead = _largest_child(source)
    if lead is not None:
        paths.remove((lead, f"{source.name}/{lead.name}"))
        paths.insert(1, (lead, f"{source.name}/{lead.name}"))
    members, offset = [], 0
    for path, name in paths:
        info = archive.gettarinfo(str(path), arcname=name)
        size = info.size if info.isreg() else 0
        header = _header(info, offset) if size > 0 else info.tobuf(*_FORMAT)
        members.append(Member(path, header, offset, size))
        offset = members[-1].end
    end = 2 * tarfile.BLOCKSIZE
    end += -(offset + end) % tarfile.RECORDSIZE
    return TarLayout(tuple(members), offset + end, 1 if lead is not None else None)


def write_tar(layout: TarLayout, fd: int, lead_in_place: bool = False) -> dict[str, int]:
    """Write the tar of `layout` into the open file `fd` at its offsets (the file position is not used). With
    `lead_in_place`, the lead's data are there already (at lead_member.data_offset) and are not written.
    Returns {"kernel": bytes copied by copy_file_range, "read/write": bytes by the fallback, "in place": bytes not
    written}."""
    copied = {"kernel": 0, "read/write": 0, "in place": 0}
    for index, member in enumerate(layout.members):
        _pwrite_all(fd, member.header, member.offset)
        if member.size and lead_in_place and index == layout.lead:
            copied["in place"] += member.size
        elif member.size:
            with open(member.path, "rb") as data:
                copied[copy_range(data.fileno(), fd, member.size, 0, member.data_offset)] += member.size
        padding = member.end - member.data_offset - member.size
        if padding:
            _pwrite_all(fd, ZEROS[:padding], member.data_offset + member.size)
    tail = layout.members[-1].end
    while tail < layout.size:
        tail += _pwrite_all(fd, ZEROS[:layout.size - tail], tail)
    return copied


def write_aligned_tar(source: Path, handle: BinaryIO) -> dict[str, int]:
    """Write the tar of directory `source` to `handle` (a file opened for binary writing at offset 0), copied, and
    leave its position at the end. Returns the bytes by how they were copied (see write_tar)."""
    layout = plan_tar(source)
    handle.flush()
    copied = write_tar(layout, handle.fileno())
    handle.seek(layout.size)
    return copied


_FORMAT = (tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _pwrite_all(fd: int, data: bytes, offset: int) -> int:
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], offset + written)
    return written


def _largest_child(source: Path) -> Path | None:
    """The largest non-empty regular file directly in `source` (the first by name among equals), or None."""
    sizes = [(-entry.stat(follow_symlinks=False).st_size, entry.name) for entry in os.scandir(source)
             if entry.is_file(follow_symlinks=False)]
    largest = min(sizes, default=None)
    return source / largest[1] if largest is not None and largest[0] < 0 else None


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
