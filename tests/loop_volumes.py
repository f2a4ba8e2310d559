"""Filesystems made for a test: an image file formatted by mkfs, loop-mounted while the test runs (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def loop_volume(root: Path, name: str, mkfs: list[str]):
    """A 512 MiB filesystem made by `mkfs` (its command, without the image) on a loop device under `root`, mounted
    while the block runs (root only: mount needs it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    image, mount = root / f"{name}.img", root / name
    with open(image, "wb") as handle:
        handle.truncate(512 * 2**20)
    subprocess.run([*mkfs, str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
