"""Durability on disk: fsync a file or directory by its path (a rename or a new file survives a crash only once
its directory, and its data, are fsync'ed)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync the file or directory at `path` (opened read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
