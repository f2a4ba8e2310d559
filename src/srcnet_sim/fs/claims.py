"""Exclusive claims of the final names a run will stage, taken before any work.

The claim of `<name>` is the hidden file `.<name>.claim` beside it in the staging area, flocked by
the run that holds it (livelock) for the whole run and unlinked, still locked, when it releases it.
A claim file nobody holds is stale (its run was killed) and is taken over. A second run that wants
a name held by a live run stops before any work, naming the holder (pid, host, start time).
Files are opened without following links; a link or anything else planted at a claim's name
stops the run too.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from srcnet_sim.fs import livelock
from srcnet_sim.errors import UserInputError

CLAIM_SUFFIX = ".claim"
# A sweeper holds a stale claim's lock for the instant it takes to unlink it: wait that long before
# calling a claim live.
BUSY_RETRIES = 10
BUSY_WAIT_S = 0.02


def claim_path(directory: Path, name: str) -> Path:
    return directory / f".{name}{CLAIM_SUFFIX}"


def _holder(path: Path) -> str:
    try:
        owner = json.loads(path.read_text())
        return f"pid {owner['pid']} on {owner['host']}, since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a live run"


def _refuse(path: Path, why: str) -> UserInputError:
    name = path.name[1: -len(CLAIM_SUFFIX)]
    return UserInputError("FILE_PREFIX", f"{path.parent / name} {why}; choose another FILE_PREFIX or OBS_ID, or wait "
                                         "for that run to end")


def _take(path: Path) -> int:
    """Lock the claim file `path` (made if missing) for this process; its descriptor."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            fd = livelock.open_lock_file(path, create=True)
        except livelock.NotARegularFile as exc:
            raise UserInputError("OUT_DIR", f"{path} is {exc.strerror} planted in the staging area; remove it") from exc
        if livelock.try_lock(fd):
            if livelock.still_named(fd, path):
                owner = {"pid": os.getpid(), "host": socket.gethostname(),
                         "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(owner).encode(), 0)
                return fd
            os.close(fd)  # its previous holder unlinked it while we waited: make a new one
            continue
        os.close(fd)
        if attempt < BUSY_RETRIES:
            time.sleep(BUSY_WAIT_S)
    raise _refuse(path, f"is being made by another run ({_holder(path)})")


def _release(path: Path, fd: int) -> None:
    if livelock.still_named(fd, path):
        path.unlink()
    os.close(fd)


@contextmanager
def claimed(directory: Path, names: list[str]) -> Iterator[None]:
    """Hold exclusive claims of `directory/<name>` for every name while the block runs (sorted order)."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            path = claim_path(directory, name)
            fd = _take(path)
            stack.callback(_release, path, fd)
        yield


def sweep(directory: Path) -> list[Path]:
    """Unlink stale claim files in `directory` (their runs died); the ones removed."""
    removed = []
    try:
        candidates = sorted(p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(CLAIM_SUFFIX))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    for path in candidates:
        try:
            fd = livelock.open_lock_file(path, create=False)
        except (FileNotFoundError, livelock.NotARegularFile):
            continue
        try:
            if livelock.try_lock(fd) and livelock.still_named(fd, path):
                path.unlink()
                removed.append(path)
        finally:
            os.close(fd)
    return removed
