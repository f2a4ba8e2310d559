"""Copy a byte range between open files inside the kernel: copy_file_range(2), which shares the blocks instead of
copying them (a reflink) where the filesystem can (XFS with reflink, btrfs, NFS 4.2 server-side), copies them in
the kernel elsewhere (ext4, tmpfs), and falls back to large pread/pwrite where the kernel refuses (across
filesystems, or no copy_file_range at all: not Linux). Whichever way, the bytes written are the same.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

COPY_BUFFER_BYTES = 8 << 20  # large reads and writes: the fallback's, and staging's zip members
CHUNK_BYTES = 1 << 30  # one copy_file_range call at most (a signal is handled between calls)
REFUSED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.ENOTSUP}
copy_file_range = getattr(os, "copy_file_range", None)


def copy_range(source_fd: int, target_fd: int, length: int, source_offset: int, target_offset: int) -> str:
    """Copy `length` bytes from source_fd at source_offset to target_fd at target_offset (file positions unchanged).

    Returns how: "kernel" (copy_file_range: shared or copied blocks, the filesystem's choice) or "read/write".
    Raises EOFError when the source ends before `length` bytes.
    """
    done, how = 0, "kernel"
    while done < length:
        n = 0
        if how == "kernel" and copy_file_range is not None:
            try:
                n = copy_file_range(source_fd, target_fd, min(CHUNK_BYTES, length - done), source_offset + done,
                                    target_offset + done)
            except OSError as exc:
                if exc.errno not in REFUSED or done:
                    raise
                how = "read/write"
                continue
        else:
            how = "read/write"
            data = os.pread(source_fd, min(COPY_BUFFER_BYTES, length - done), source_offset + done)
            n = len(data)
            written = 0
            while written < n:
                written += os.pwrite(target_fd, data[written:], target_offset + done + written)
        if n == 0:
            raise EOFError(f"the source ended after {source_offset + done} of {source_offset + length} bytes")
        done += n
    return how


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), share all of a file's blocks


def shares_blocks(directory: Path) -> bool:
    """Whether the filesystem of `directory` (which exists and is writable) shares blocks between files, as
    copy_file_range then does (XFS with reflink=1, btrfs): a probe file of one block cloned with the FICLONE ioctl
    (refused by ext4, tmpfs and most others), both removed at once."""
    import fcntl
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".srcnet-sim-reflink-") as source, \
                tempfile.NamedTemporaryFile(dir=directory, prefix=".srcnet-sim-reflink-") as clone:
            source.write(b"\0" * 4096)
            source.flush()
            fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
    except OSError:
        return False
    return True
