"""A MeasurementSet's Stokes I reordered by channel group into scratch files, in one pass (as WSClean's -reorder).

A cube's planes each read their own channels, again on every clean major cycle when they do not fit in memory.
Read from the MS, every plane decodes the whole of each DATA and FLAG tile it touches (a tile holds a block of
rows and many channels), so a cube of N planes reads the MS N times or more. Reordered first, each plane reads
only its group's samples: one pass over the MS, then n_rows x channels x 12 bytes (complex64 Stokes I and its
float32 weight) written and read back per group, plus the UVW once (24 bytes a row).

Files: `uvw.npy` (n_rows, 3) float64 and, per group g, `vis-<g>.npy` (n_rows, n_g) complex64 and `weight-<g>.npy`
(n_rows, n_g) float32 (NumPy's .npy format, read through memory maps), in a private directory removed on close.
The directory is a locked scratch directory (fs.scratch.live_directory, prefix REORDER_PREFIX): one that a killed
process (SIGKILL, OOM) left behind is removed by the next reordering in the same parent, and by the next run's
sweep of TMPDIR, never one whose process still lives.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from srcnet_sim.fs import scratch as scratch_dirs
from srcnet_sim.imaging.msdata import MeasurementSetSource, Visibilities
from srcnet_sim.progress import logger
from srcnet_sim.sizing import CHUNK_SAMPLES, human, reorder_bytes

REORDER_PREFIX = scratch_dirs.SCRATCH_PREFIX + "reorder-"  # under SCRATCH_PREFIX: the run's sweep of TMPDIR sees it


class ReorderedGroups:
    """The Stokes I samples of `groups` ([start, stop) channels each, adjacent, in order) of `ms`, written once into
    files under a new directory in `scratch`; `read(g, row, n)` gives rows [row, row + n) of group g as
    Visibilities (the same values as ms.read_channels of the group's channels). Use as a context manager (or call
    close): the files are removed."""

    def __init__(self, ms: MeasurementSetSource, groups: list[tuple[int, int]], scratch: Path,
                 chunk_samples: int = CHUNK_SAMPLES) -> None:
        self.ms, self.groups = ms, list(groups)
        scratch_dirs.sweep(Path(scratch), REORDER_PREFIX)
        self._directory = ExitStack()
        self.directory = self._directory.enter_context(scratch_dirs.live_directory(Path(scratch), REORDER_PREFIX))
        try:
            self._write(chunk_samples)
        except BaseException:
            self.close()
            raise

    def _write(self, chunk_samples: int) -> None:
        ms, groups, n_rows = self.ms, self.groups, self.ms.n_rows
        first, last = groups[0][0], groups[-1][1]
        started = time.perf_counter()
        open_memmap = np.lib.format.open_memmap
        uvw = open_memmap(self.directory / "uvw.npy", "w+", np.float64, (n_rows, 3))
        vis = [open_memmap(self.directory / f"vis-{g}.npy", "w+", np.complex64, (n_rows, b - a))
               for g, (a, b) in enumerate(groups)]
        weight = [open_memmap(self.directory / f"weight-{g}.npy", "w+", np.float32, (n_rows, b - a))
                  for g, (a, b) in enumerate(groups)]
        rows_per_chunk = max(1, chunk_samples // (last - first))
        for row in range(0, n_rows, rows_per_chunk):
            n = min(rows_per_chunk, n_rows - row)
            chunk = ms.read_channels(row, n, (first, last))
            uvw[row:row + n] = chunk.uvw_m
            for g, (a, b) in enumerate(groups):
                vis[g][row:row + n] = chunk.vis[:, a - first:b - first]
                weight[g][row:row + n] = chunk.weight[:, a - first:b - first]
        for array in (uvw, *vis, *weight):
            array.flush()
        del uvw, vis, weight
        logger.info("cube: the MS's Stokes I reordered into %d channel groups (%s in %s) in %.1f s, one pass over "
                    "the MS", len(groups), human(reorder_bytes(n_rows, last - first)), self.directory,
                    time.perf_counter() - started)

    def read(self, group: int, row: int, n: int) -> Visibilities:
        """Rows [row, row + n) of group `group` (an index into groups) as Stokes I, arrays of their own."""
        a, b = self.groups[group]
        load = lambda name: np.load(self.directory / name, mmap_mode="r")  # noqa: E731
        return Visibilities(uvw_m=np.array(load("uvw.npy")[row:row + n]), freq_hz=self.ms.freq_hz[a:b],
                            vis=np.array(load(f"vis-{group}.npy")[row:row + n]),
                            weight=np.array(load(f"weight-{group}.npy")[row:row + n]),
                            phase_centre_rad=self.ms.phase_centre_rad, time_range_s=(0.0, 0.0),
                            telescope_name=self.ms.telescope_name, channel_width_hz=self.ms.channel_width_hz[a:b])

    def close(self) -> None:
        """Remove the files and their directory (and release its lock)."""
        self._directory.close()

    def __enter__(self) -> "ReorderedGroups":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

