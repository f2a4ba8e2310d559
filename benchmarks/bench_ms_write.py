"""The MS write path against the disk it writes to, measured in one run (issue 9, item 4).

Prints the disk's sequential write speed (a large file written in 16 MiB chunks, then fsynced),
the MeasurementSetWriter's speed (SKA-Mid AA* rows, many time steps, the MS fsynced at the end so
that both figures are bytes on disk) through casacore and with DATA written past it and the page cache
(`direct_data`, as the run's writer process writes it; with --block > 1), the tar copy into staging
(products.staging), the ratios, and one JSON line.

    PYTHONPATH=src python3 benchmarks/bench_ms_write.py [--channels 64] [--dumps 48] [--block 8] [--dir DIR]

`--block 1` writes one dump per `append` (the old path); larger blocks use `append_block`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from srcnet_sim.vis.writer import MeasurementSetWriter, MSDescription
from srcnet_sim.products import staging
from srcnet_sim.simulate.predict import baseline_pairs
from srcnet_sim.instrument import load_telescope

MB = 1e6
CHUNK = 16 << 20


def fsync_tree(path: Path) -> None:
    """fsync every file of a directory tree (an MS), so its bytes are on disk."""
    for root, _, files in os.walk(path):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def tree_bytes(path: Path) -> int:
    return sum((Path(root) / name).stat().st_size for root, _, files in os.walk(path) for name in files)


def disk_write_speed(directory: Path, n_bytes: int) -> float:
    """Bytes/s of a sequential write of `n_bytes` (16 MiB writes, then fsync) into `directory`."""
    chunk = np.random.default_rng(0).integers(0, 255, CHUNK, dtype=np.uint8).tobytes()
    path = directory / "disk-speed.bin"
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < n_bytes:
            written += os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    path.unlink()
    return written / elapsed


def description(n_chan: int, n_dumps: int, interval_s: float):
    telescope = load_telescope("SKA-MID-AAstar")
    start = 60000.0 * 86400.0
    return MSDescription(telescope=telescope, freq_hz=1.3e9 + 1e5 * np.arange(n_chan), channel_width_hz=1e5,
                         phase_centre_rad=(2.6, -0.5), field_name="bench", history=("bench",), application="bench",
                         time_range_s=(start, start + n_dumps * interval_s))


def ms_write_speed(directory: Path, n_chan: int, n_dumps: int, block: int,
                   direct: bool = False) -> tuple[float, int, Path]:
    """Bytes/s of MeasurementSetWriter (rows of AA*, `block` dumps per call), MS fsynced; (speed, bytes, path).
    direct: DATA written with MeasurementSetWriter.reopen(direct_data=True), each block flushed as a run does."""
    interval_s = 8.0
    desc = description(n_chan, n_dumps, interval_s)
    ant1, ant2 = baseline_pairs(desc.telescope.n_dish, False)
    n_bl = len(ant1)
    rng = np.random.default_rng(1)
    vis = (rng.standard_normal((block * n_bl, n_chan, 4)) + 1j * rng.standard_normal((block * n_bl, n_chan, 4))).astype(np.complex64)
    uvw = rng.standard_normal((block * n_bl, 3)) * 1e3
    sigma = np.full(n_bl, 0.5)
    path = directory / "bench.ms"
    start = time.perf_counter()
    if direct:
        MeasurementSetWriter(path, desc).close()
    with (MeasurementSetWriter.reopen(path, direct_data=True) if direct else MeasurementSetWriter(path, desc)) as writer:
        for first in range(0, n_dumps, block):
            n = min(block, n_dumps - first)
            times = desc.time_range_s[0] + interval_s * (first + np.arange(n) + 0.5)
            if block == 1:
                writer.append(float(times[0]), interval_s, ant1, ant2, uvw[:n_bl], vis[:n_bl], sigma)
            else:
                writer.append_block(times, interval_s, ant1, ant2, uvw[:n * n_bl].reshape(n, n_bl, 3),
                                    vis[:n * n_bl].reshape(n, n_bl, n_chan, 4), sigma)
                if direct:
                    writer.flush()
    fsync_tree(path)
    elapsed = time.perf_counter() - start
    size = tree_bytes(path)
    return size / elapsed, size, path


def tar_speed(ms: Path, directory: Path) -> float:
    """Bytes/s of staging's tar of the MS into a new file (fsynced), as workflow.stage_products does."""
    target = directory / "bench.ms.tar"
    start = time.perf_counter()
    staging.write_new_file(target, staging.tar_directory(ms))
    elapsed = time.perf_counter() - start
    size = target.stat().st_size
    target.unlink()
    return size / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--dumps", type=int, default=48)
    parser.add_argument("--block", type=int, default=8, help="dumps per append_block call (1: append per dump)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (MS, disk, tar); the median round is shown")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-ms-") as tmp:
        directory = Path(tmp)
        for _ in range(args.rounds):  # each round measures the disk beside the MS: the ratio is of one moment
            ms_speed, ms_bytes, ms = ms_write_speed(directory, args.channels, args.dumps, args.block)
            disk = disk_write_speed(directory, ms_bytes)  # the same number of bytes
            tar = tar_speed(ms, directory)
            shutil.rmtree(ms)
            direct = 0.0
            if args.block > 1:
                direct, _, ms = ms_write_speed(directory, args.channels, args.dumps, args.block, direct=True)
                shutil.rmtree(ms)
            rounds.append((ms_speed / disk, ms_speed, disk, tar, direct))
    ms_ratio, ms_speed, disk, tar, direct = sorted(rounds)[len(rounds) // 2]
    result = {"channels": args.channels, "dumps": args.dumps, "block": args.block, "ms_bytes": ms_bytes,
              "rounds": args.rounds, "disk_MBps": round(disk / MB, 1), "ms_write_MBps": round(ms_speed / MB, 1),
              "tar_MBps": round(tar / MB, 1), "ms_ratio": round(ms_ratio, 3), "tar_ratio": round(tar / disk, 3),
              "ms_direct_data_MBps": round(direct / MB, 1),
              "ms_ratios_all_rounds": [round(r[0], 3) for r in rounds]}
    print(f"disk sequential write   {result['disk_MBps']:8.1f} MB/s")
    print(f"MS write ({args.channels} ch, {args.dumps} dumps, block {args.block}) {result['ms_write_MBps']:8.1f} MB/s  "
          f"({ms_bytes / MB:.0f} MB)  ratio {result['ms_ratio']:.2f}")
    if direct:
        print(f"MS write, direct DATA   {direct / MB:8.1f} MB/s  ratio {direct / disk:.2f}  (the run's writer process)")
    print(f"tar into staging        {result['tar_MBps']:8.1f} MB/s  ratio {result['tar_ratio']:.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
