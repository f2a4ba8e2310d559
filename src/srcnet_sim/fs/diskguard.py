"""Stop a writer before its volume fills up.

casacore aborts the whole process (SIGABRT, from a C++ exception in a destructor) when a table
write meets a full disk, so nothing could clean up after it. A DiskGuard is checked before each
block is handed to casacore and raises DiskFullError while Python can still clean up: when the
free space is less than what the rest of the table needs (from the run's estimate) plus a reserve
for casacore's buffered buckets and table.dat.
"""

from __future__ import annotations

from pathlib import Path

from srcnet_sim.errors import DiskFullError
from srcnet_sim.fs.space import free_bytes
from srcnet_sim.sizing import human

RESERVE_BYTES = 8 * 2**20  # casacore buffers a tile (256 KiB) per hypercube and 32 KiB buckets


class DiskGuard:
    """Free-space check of the volume holding `directory` (the setting that names it: TMPDIR, OUT_DIR)."""

    def __init__(self, directory: Path, setting: str, total_bytes: int, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.directory = directory
        self.setting = setting
        self.total_bytes = total_bytes
        self.reserve_bytes = reserve_bytes

    def check(self, remaining_fraction: float) -> None:
        """Raise DiskFullError unless the volume holds `remaining_fraction` of the total plus the reserve."""
        need = int(self.total_bytes * max(0.0, remaining_fraction)) + self.reserve_bytes
        free = free_bytes(self.directory)
        if free < need:
            raise DiskFullError(f"{self.setting}: {self.directory} has {human(free)} free, the rest of the run needs "
                                f"about {human(need)}: the volume filled up during the run; nothing partial was left")
