"""Proof that a run is alive: an exclusive `flock` on a file, held for the run's whole life.

The kernel drops the lock when the process dies, however it dies (SIGKILL, OOM kill), so a lock
that can be taken belongs to a dead run. flock works across processes on one machine and, on
Linux, across NFS clients (it is mapped to NFS byte-range locks), as a shared Kubernetes volume
needs. Lock files are opened without following links and must be regular files: a link or FIFO
planted at a lock file's name is refused, never followed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

OPEN_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotARegularFile(OSError):
    """A lock file's name holds a link, directory, FIFO or device: someone else put it there."""


def open_lock_file(path: Path, create: bool, exclusive: bool = False) -> int:
    """Open (or create, mode 0600) the lock file `path` without following links; the file descriptor.

    Raises FileNotFoundError when it does not exist and `create` is false, FileExistsError when it
    exists and `exclusive` is true, NotARegularFile when the name holds anything but a regular file.
    """
    flags = OPEN_FLAGS | (os.O_CREAT if create else 0) | (os.O_EXCL if exclusive else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFile(errno.ELOOP, "a symbolic link, not a lock file", str(path)) from exc
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise NotARegularFile(exc.errno, "not a regular file", str(path)) from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(errno.EINVAL, "not a regular file", str(path))
    return fd


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False when a live process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def still_named(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open at `fd` (a releasing owner unlinks it before unlocking)."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def is_dead(path: Path) -> bool:
    """Whether the lock file `path` exists and no live process holds its lock (checked without waiting).

    The lock is taken for the instant of the check only; a missing file or a planted non-file is not dead.
    """
    try:
        fd = open_lock_file(path, create=False)
    except (FileNotFoundError, NotARegularFile):
        return False
    try:
        return try_lock(fd)
    finally:
        os.close(fd)
