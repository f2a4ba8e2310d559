"""Executors: compute the blocks of a run and hand their results, in block order, to one writer.

- local: one computing thread (the caller's) runs the blocks in turn, each on all of WORKER_THREADS
  cores (numba's parallel loops) or on the GPU, while a writer thread writes the previous block. numba's
  workqueue threading layer (runtime.py) cannot launch kernels from several Python threads at
  once, so there is exactly one computing thread; the kernels release the GIL (nogil), so the
  writer runs beside them (casacore does not release it: the MSv2 is written by the writer's own process,
  vis.writer_process). A queue of QUEUE_DEPTH results bounds the memory.
- dask: blocks are tasks on a dask.distributed cluster (DASK_SCHEDULER_ADDRESS, or a LocalCluster of
  DASK_WORKERS single-threaded worker processes); at most WINDOW_PER_WORKER blocks per worker are
  in flight; the caller's thread gathers them in order and writes them while the workers compute.

Either way the run takes about max(compute, write), and the results are the same bytes (blocks.py).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from srcnet_sim.fs import scratch
from srcnet_sim.run.blocks import Block, BlockResult, compute_block
from srcnet_sim.run.overlap import write_behind
from srcnet_sim.run.worker_writes import WorkerStore, compute_and_store
from srcnet_sim.vis.writer_process import release_shared_memory, shared_empty
from srcnet_sim.progress import logger

QUEUE_DEPTH = 1
WINDOW_PER_WORKER = 2
CONNECT_TIMEOUT_S = 30


@dataclass(frozen=True)
class ExecutorOptions:
    """How blocks are computed (from EXECUTOR, DASK_SCHEDULER_ADDRESS, DASK_WORKERS, WORKER_THREADS, MEMORY_LIMIT)."""

    kind: str = "local"
    scheduler_address: str | None = None
    workers: int = 1
    threads: int = 1
    memory_limit_bytes: int | None = None
    backend: str = "cpu"  # the predictor of every block: "cpu" or "gpu" (simulate.predictors)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container's cpuset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def executor_options(executor: str, scheduler_address: str | None, dask_workers: int | None,
                     worker_threads: int | None, memory_limit_bytes: int | None, backend: str = "cpu") -> ExecutorOptions:
    """Resolve the defaults: local uses every core in one computation; dask's LocalCluster has cores / threads
    workers of `worker_threads` (default 1) threads each."""
    cores = available_cores()
    if executor == "local":
        return ExecutorOptions("local", None, 1, worker_threads or cores, memory_limit_bytes, backend)
    threads = worker_threads or 1
    workers = dask_workers or max(1, cores // threads)
    return ExecutorOptions("dask", scheduler_address, workers, threads, memory_limit_bytes, backend)


def run_blocks(observation, blocks: Iterable[Block], write: Callable[[BlockResult], None],
               options: ExecutorOptions, store: WorkerStore | None = None) -> None:
    """Compute `blocks` (in order) with the chosen executor; `write` is called with each result in block order,
    from one thread at a time. With `store`, Dask workers write their blocks into it themselves (run.worker_writes;
    the results come back marked `stored`)."""
    if options.kind == "dask":
        _run_dask(observation, list(blocks), write, options, store)
    else:
        _run_local(observation, blocks, write, options)


def _run_local(observation, blocks: Iterable[Block], write: Callable[[BlockResult], None], options: ExecutorOptions) -> None:
    """Blocks computed in this thread, written by overlap.write_behind's writer thread, QUEUE_DEPTH in between.
    A signal stops both after the block being written (a block is never journaled half-written)."""
    results = (compute_block(observation, block, options.threads, options.backend, shared_empty) for block in blocks)
    try:
        write_behind(results, write, depth=QUEUE_DEPTH)
    finally:
        release_shared_memory()


def _client(options: ExecutorOptions, local_directory: str):
    """A distributed Client: to DASK_SCHEDULER_ADDRESS, or to a new LocalCluster of worker processes (their
    files in `local_directory`)."""
    import dask
    from distributed import Client, LocalCluster

    if options.scheduler_address:
        return Client(options.scheduler_address, timeout=CONNECT_TIMEOUT_S), None
    # Blocks are sized to the memory budget: no spilling or pausing, the nanny only guards against excess.
    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False}):
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               memory_limit=options.memory_limit_bytes or "auto", dashboard_address=":0",
                               silence_logs=logging.WARNING, local_directory=local_directory)
    return Client(cluster), cluster


def _run_dask(observation, blocks: list[Block], write: Callable[[BlockResult], None], options: ExecutorOptions,
              store: WorkerStore | None) -> None:
    import dask

    # A scratch directory with its run's lock, so that the next run removes it if this one is killed with its workers.
    with scratch.live_directory(Path(tempfile.gettempdir()), scratch.SCRATCH_PREFIX + "dask-") as local_directory, \
            dask.config.set({"temporary-directory": str(local_directory)}):
        _run_on_cluster(observation, blocks, write, options, str(local_directory), store)


def _run_on_cluster(observation, blocks: list[Block], write: Callable[[BlockResult], None], options: ExecutorOptions,
                    local_directory: str, store: WorkerStore | None) -> None:
    from srcnet_sim.run.dask_plugin import ProcessSettings

    client, cluster = _client(options, local_directory)
    try:
        client.register_plugin(ProcessSettings(), name=ProcessSettings.name)
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        logger.info("dask: scheduler %s, %d workers x %d threads, dashboard %s", client.scheduler.address, n_workers,
                    options.threads, client.dashboard_link)
        model = client.scatter(observation, broadcast=True)
        pending: deque = deque()
        remaining = iter(blocks)

        def submit_next() -> None:
            block = next(remaining, None)
            if block is not None:
                task, extra = (compute_block, ()) if store is None else (compute_and_store, (store,))
                pending.append(client.submit(task, model, block, options.threads, options.backend, *extra, pure=False,
                                             key=f"srcnet-sim-block-{block.index}-{os.getpid()}"))

        for _ in range(WINDOW_PER_WORKER * n_workers):
            submit_next()
        while pending:
            future = pending.popleft()
            result = future.result()
            future.release()
            submit_next()
            write(result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
