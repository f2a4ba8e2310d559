"""Blocks written by the process that computed them: a Dask task computes its block and writes it into the run's
MSv4 store itself (vis.msv4: a block fills whole chunks, so workers never share a file), so that the store has no
single writer. The run's process only journals the block, and writes it itself when the worker could not (its
TMPDIR is not the run's: a remote cluster without a shared volume; or the block does not fill whole chunks, as
after a resume with another MEMORY_LIMIT).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from srcnet_sim.run.blocks import Block, BlockResult, compute_block

_WRITERS: dict[str, object] = {}  # a worker process's open stores, by path


@dataclass(frozen=True)
class WorkerStore:
    """Where and how a worker writes its blocks: the store's path, the samples' length (s) and the baselines' noise
    sigma ((n_bl,) Jy, the weights); keep_results: the run's process needs the block's arrays too (an MSv2 beside)."""

    path: str
    interval_s: float
    sigma: np.ndarray
    keep_results: bool

    def writer(self):
        """The open vis.msv4.ProcessingSetWriter of this store in this process, or None when the store is not here."""
        from srcnet_sim.vis.msv4 import ProcessingSetWriter

        if self.path not in _WRITERS:
            if not (Path(self.path) / "zarr.json").is_file():
                return None
            _WRITERS[self.path] = ProcessingSetWriter(Path(self.path))
        return _WRITERS[self.path]

    def put(self, result: BlockResult) -> bool:
        """Write `result` into the store when this process sees it and the block fills whole chunks; True if it did."""
        block = result.block
        writer = self.writer()
        if writer is None or not writer.fits_chunks(block.time_start, block.time_stop, block.chan_start, block.chan_stop):
            return False
        writer.put_block(block.time_start, block.chan_start, self.interval_s, result.uvw_m, result.vis, self.sigma,
                         flag=result.flag, model=result.model)
        return True


def compute_and_store(observation, block: Block, threads: int | None, backend: str, store: WorkerStore) -> BlockResult:
    """Compute `block` (run.blocks.compute_block) and write it into `store`; the result comes back marked `stored`,
    without its arrays unless store.keep_results."""
    result = compute_block(observation, block, threads, backend)
    if not store.put(result):
        return result
    if store.keep_results:
        return replace(result, stored=True)
    return BlockResult(block, result.time_s, result.uvw_m[:0], result.vis[:0], None, None, result.rfi_score, stored=True)
