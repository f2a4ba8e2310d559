"""Scaling benchmark: the whole `run --vis` over threads and Dask workers, the disk's write speed, and matvis,
in one run on one machine.

For each configuration (the median of --repeat runs, 3 by default) it prints the wall time of the whole run
(start-up included), the time of its simulate phase alone (blocks computed and written, as the run logs it), the throughput in source-visibilities per
second (sources x baselines x channels x time steps / wall time) and in MB/s of MS written, the peak resident
memory of the largest process (a Dask worker or the run itself), and ratios:
2 threads vs 1 (target >= 1.8 on 2 cores), the default run vs matvis's visibilities alone (target >= 3).
The disk's sequential write speed is measured in the same run (256 MiB written and fsync'ed in TMPDIR).

Beside each speed-up over 1 thread it prints Amdahl's bound for that many cores, T1 / (S + (T1 - S) / N), with S the
run's serial floor measured in the same run: the wall time of a run of 1 time step and 1 source (interpreter,
imports, numba's loading of its cached kernels, planning, the MS's creation, staging: work that every run does
once and that no number of cores shortens). S is a lower bound of a larger run's serial time, so the bound is an
upper bound of the speed-up that any parallel scheme can reach for that run.

    python benchmarks/bench_scale.py                 # the default run (AA*, 10,000 sources, 24 x 4)
    python benchmarks/bench_scale.py --curve 16      # threads and Dask workers 1, 2, 4, 8, 16 (bigger nodes)
    python benchmarks/bench_scale.py --times 240     # a run 10x the default
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import child  # noqa: E402  (matvis beside us, same workload)

from srcnet_sim.run.calibrate import disk_write_speed  # noqa: E402

N_BASELINES_AASTAR = 144 * 143 // 2


def whole_run(settings: dict[str, str]) -> dict:
    """Wall time of `srcnet-sim run --vis` with `settings`, of its simulate phase, the MS size, the largest
    process's peak RSS."""
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "OUT_DIR": work, "TMPDIR": work, "OBS_ID": "bench-scale", **settings}
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        parent, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                for process in [parent, *parent.children(recursive=True)]:
                    peak = max(peak, process.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        log = proc.stderr.read()
        if proc.returncode != 0:
            raise RuntimeError(log)
        staged = next(Path(work).rglob("*.ms.tar"))
        simulate = float(re.search(r"simulate: \d+ blocks in ([0-9.]+) s", log).group(1))
        return {"seconds": seconds, "simulate_seconds": simulate, "ms_bytes": staged.stat().st_size, "peak_rss": peak}


def local_config(n: int, cores: int) -> tuple[str, dict[str, str]]:
    """(name, settings) of EXECUTOR=local with n threads (the default, all cores, when n == cores)."""
    return f"local, {n} thread{'s' if n > 1 else ''}", ({"WORKER_THREADS": str(n)} if n < cores else {})


def dask_config(n: int) -> tuple[str, dict[str, str]]:
    """(name, settings) of EXECUTOR=dask with a LocalCluster of n one-thread worker processes."""
    return (f"dask LocalCluster, {n} worker{'s' if n > 1 else ''}",
            {"EXECUTOR": "dask", "DASK_WORKERS": str(n), "WORKER_THREADS": "1"})


def amdahl_bound(one_core_s: float, serial_s: float, cores: int) -> float:
    """The largest speed-up on `cores` of a run taking `one_core_s` on one core, `serial_s` of it serial."""
    return one_core_s / (serial_s + (one_core_s - serial_s) / cores)


def curve_points(most: int) -> list[int]:
    """1, 2, 4, ... up to `most`, and `most` itself (none for 0)."""
    return sorted({2**k for k in range(most.bit_length())} | {most}) if most > 0 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--times", type=int, default=24)
    parser.add_argument("--curve", type=int, default=0, help="also threads and Dask workers 1, 2, 4, ... N")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration; the median is printed")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    # The CPU predictor's scaling: BACKEND=cpu, also on a node with a GPU (where auto could take the GPU).
    base = {"SYNTHETIC_SOURCES": str(args.sources), "NUM_TIME_STAMPS": str(args.times), "BACKEND": "cpu"}
    samples = args.sources * N_BASELINES_AASTAR * 4 * args.times
    whole_run({**base, "NUM_TIME_STAMPS": "2"})  # warm-up: numba compiles (or loads) its kernels into its cache
    disk = disk_write_speed(Path(tempfile.gettempdir()), 256 * 2**20)
    print(f"workload: AA* 144 dishes, {args.sources} sources, {args.times} time steps x 4 channels, bandwidth smearing; "
          f"{cores} cores; disk sequential write {disk / 1e6:.0f} MB/s (256 MiB, fsync)")
    floor = sorted(whole_run({**base, "NUM_TIME_STAMPS": "1", "SYNTHETIC_SOURCES": "1"})["seconds"]
                   for _ in range(args.repeat))[args.repeat // 2]
    print(f"serial floor: a run of 1 time step and 1 source takes {floor:.2f} s (start-up, numba's cached kernels "
          "loaded, the MS created and staged)")
    # 1 and all cores and the curve's points, each once: threads, then Dask workers.
    points = sorted({1, cores, *curve_points(args.curve)})
    configs = [("local", n, *local_config(n, cores)) for n in points] + [("dask", n, *dask_config(n)) for n in points]
    results = {}  # (executor, cores): the median run
    print(f"{'configuration':34s} {'wall s':>8s} {'simulate s':>10s} {'Gsrc-vis/s':>11s} {'MS MB/s':>8s} {'peak RSS MB':>12s} "
          f"{'speed-up':>9s} {'Amdahl bound':>13s}")
    for executor, n, name, settings in configs:
        runs = sorted((whole_run({**base, **settings}) for _ in range(args.repeat)), key=lambda run: run["seconds"])
        r = results[executor, n] = runs[len(runs) // 2]
        one_core = results[executor, 1]
        print(f"{name:34s} {r['seconds']:8.2f} {r['simulate_seconds']:10.2f} {samples / r['seconds'] / 1e9:11.2f} "
              f"{r['ms_bytes'] / r['seconds'] / 1e6:8.1f} {r['peak_rss'] / 2**20:12.0f} "
              f"{one_core['seconds'] / r['seconds']:8.2f}x {amdahl_bound(one_core['seconds'], floor, n):12.2f}x", flush=True)
    theirs = sorted((child("matvis", args.sources, args.times) for _ in range(args.repeat)),
                    key=lambda run: run["seconds"])[args.repeat // 2]
    print(f"{'matvis simulate_vis alone':34s} {theirs['seconds']:8.2f} {'-':>10s} {samples / theirs['seconds'] / 1e9:11.2f} "
          f"{'-':>8s} {theirs['peak_rss_mb']:12.0f}")
    all_name = local_config(cores, cores)[0]
    one, all_cores = results["local", 1]["seconds"], results["local", cores]["seconds"]
    outside = one - results["local", 1]["simulate_seconds"]
    print(f"ratio: {all_name} vs 1: {one / all_cores:.2f}x whole run (target >= 1.8 on 2 cores; Amdahl's bound with the "
          f"serial floor: {amdahl_bound(one, floor, cores):.2f}x; the 1-thread run spends {outside:.2f} s outside its "
          f"simulate phase), {results['local', 1]['simulate_seconds'] / results['local', cores]['simulate_seconds']:.2f}x "
          "simulate phase")
    print(f"ratio: whole run --vis ({cores} threads) vs matvis visibilities alone: {theirs['seconds'] / all_cores:.2f}x "
          "(target >= 3)")
    print(f"ratio: MS written at {results['local', cores]['ms_bytes'] / all_cores / disk:.2f} of the disk's "
          "sequential speed over the whole run (compute-bound here)")


if __name__ == "__main__":
    main()
