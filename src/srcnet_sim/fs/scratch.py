"""Private working directories of a run (scratch under TMPDIR, partial products in the staging area):
created exclusively, removed at the end, and recognised as dead when their run was killed.

Each directory is made by `mkdir` with a random name (mode 0700; never an existing path, never a
link) and holds the lock file `ALIVE`, flocked by its run for as long as it lives (see livelock).
The next run on that volume removes directories whose lock it can take (their run died: SIGKILL,
OOM kill, node loss) and never one whose lock is held. A directory without its lock file is the
remains of a run killed between `mkdir` and taking the lock (microseconds), or of a srcnet-sim
older than these locks, whose runs can last hours: it is removed only when untouched for
LOCKLESS_AGE_S.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from srcnet_sim.fs import livelock

ALIVE = "ALIVE"
SCRATCH_PREFIX = "srcnet-sim-"
PARTIAL_PREFIX = ".srcnet-sim-partial-"
LOCKLESS_AGE_S = 24 * 3600.0

logger = logging.getLogger("srcnet_sim")


@contextmanager
def live_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A new private directory `parent/<prefix><random>`, locked while the block runs, removed after it
    (also on an exception or a signal that raises)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = -1
    try:
        fd = livelock.open_lock_file(path / ALIVE, create=True, exclusive=True)
        if not livelock.try_lock(fd):
            raise RuntimeError(f"{path / ALIVE} is locked by another process")  # cannot happen: the name is new
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if fd >= 0:
            os.close(fd)


def _owned_directory(path: Path) -> os.stat_result | None:
    """lstat of `path` when it is a real directory (not a link) of this user, else None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return None
    return info


def dead_directories(parent: Path, prefix: str, now_s: float | None = None) -> list[Path]:
    """Directories `parent/<prefix>*` whose run is dead (see the module's docstring)."""
    now_s = time.time() if now_s is None else now_s
    try:
        candidates = sorted(p for p in parent.iterdir() if p.name.startswith(prefix))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    dead = []
    for path in candidates:
        info = _owned_directory(path)
        if info is None:
            continue
        lock = path / ALIVE
        if os.path.lexists(lock):
            if livelock.is_dead(lock):
                dead.append(path)
        elif now_s - info.st_mtime > LOCKLESS_AGE_S:
            dead.append(path)
    return dead


def sweep(parent: Path, prefix: str) -> list[Path]:
    """Remove the dead directories `parent/<prefix>*` (logging each with its size); the ones removed."""
    removed = []
    for path in dead_directories(parent, prefix):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside the tree
        if not path.exists():
            removed.append(path)
            logger.warning("removed %s (%.1f MiB) left by a run that was killed", path, size / 2**20)
    return removed
