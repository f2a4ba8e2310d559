"""Staging a MeasurementSet as a tar: the 4 KiB-aligned tar copied in the kernel (products.aligned_tar) and made
around the MS's DATA file (products.adopted_tar: what `run --vis` stages where the filesystem shifts extents) beside
Python's tarfile.add (what it staged before) and `dd` of as many bytes, in the same run, on the same volume; and, given a directory on a filesystem that shares blocks (XFS with reflink=1, btrfs), the aligned
tar made there beside its MS, and how much of the volume it took.

The MS is that of the I/O-bound run of issue 25 (NUM_TIME_STAMPS=240, 16 channels of 4.4375 MHz, one source,
SMEARING=off: 1.47 GB), made once with `srcnet-sim run --vis` and unpacked from its staged tar. Each figure is the
best of --repeat, every write fsynced, `sync` before each.

    python benchmarks/bench_staging.py [--repeat 3] [--work DIR] [--reflink-dir DIR]
    # a reflink filesystem for the last rows, as root: truncate -s 6G /tmp/xfs.img && mkfs.xfs -q /tmp/xfs.img &&
    #   mkdir -p /mnt/xfs && mount -o loop /tmp/xfs.img /mnt/xfs
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from srcnet_sim.products.aligned_tar import write_aligned_tar

RUN = {"NUM_TIME_STAMPS": "240", "FREQ_INC_HZ": "4437500", "SYNTHETIC_SOURCES": "1", "SMEARING": "off"}


def make_ms(work: Path) -> Path:
    """The I/O-bound run's MS, unpacked under `work`."""
    out, tmp = work / "out", work / "tmp"
    out.mkdir()
    tmp.mkdir()
    env = {**os.environ, **RUN, "OUT_DIR": str(out), "TMPDIR": str(tmp)}
    subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged = next(out.rglob("*.ms.tar"))
    with tarfile.open(staged) as archive:
        archive.extractall(work / "ms", filter="tar")
    shutil.rmtree(out)
    return next((work / "ms").iterdir())


def timed(write, target: Path, repeat: int) -> tuple[float, int]:
    """(best seconds, bytes) of write(handle) into a new `target`, fsynced; the file is removed after each try."""
    best, size = float("inf"), 0
    for _ in range(repeat):
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        with open(target, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        best = min(best, time.perf_counter() - start)
        size = target.stat().st_size
        target.unlink()
    return best, size


def timed_adoption(ms: Path, work: Path, repeat: int) -> tuple[float, int]:
    """(best seconds, bytes) of staging.prepare_adopted (what `run` stages when nothing reads the MS after it: the
    tar made around the MS's DATA file where the filesystem shifts extents) of a fresh copy of `ms` each try."""
    from srcnet_sim.products import staging

    best, size = float("inf"), 0
    for attempt in range(repeat):
        state, private = work / f"state{attempt}", work / f"private{attempt}"
        private.mkdir()
        state.mkdir()
        shutil.copytree(ms, state / ms.name)
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        prepared = staging.prepare_adopted(private, work / "final.tar", state / ms.name, state, lambda path, size: {}, [])
        best = min(best, time.perf_counter() - start)
        size = prepared.data.stat().st_size
        shutil.rmtree(state)
        shutil.rmtree(private)
    return best, size


def tarfile_add(ms: Path):
    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT, copybufsize=8 << 20) as archive:
            archive.add(ms, arcname=ms.name)
    return write


def dd(target: Path, size: int, flag: str, repeat: int) -> float:
    """Best MB/s of dd writing `size` bytes of zeros in 16 MiB blocks with `flag` (oflag=direct or conv=fsync)."""
    best = float("inf")
    for _ in range(repeat):
        subprocess.run(["sync"], check=True)
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={-(-size // (16 << 20))}", flag],
                       check=True, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
        target.unlink()
    return -(-size // (16 << 20)) * (16 << 20) / best / 1e6


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="a directory on the volume to measure (default TMPDIR)")
    parser.add_argument("--reflink-dir", type=Path, default=None, help="a directory on an XFS (reflink=1) or btrfs volume")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        ms = make_ms(work)
        size = sum(p.stat().st_size for p in ms.rglob("*") if p.is_file())
        print(f"MS {ms.name}: {size / 1e6:.0f} MB in {sum(1 for _ in ms.rglob('*'))} entries, on {work}")
        rows = {"aligned tar, copy_file_range (other volumes)": timed(lambda h: write_aligned_tar(ms, h),
                                                                     work / "aligned.tar", args.repeat),
                "tarfile.add, 8 MiB copies (before)": timed(tarfile_add(ms), work / "tarfile.tar", args.repeat),
                "tar made around DATA (run's staging, --vis)": timed_adoption(ms, work, args.repeat)}
        for name, (seconds, written) in rows.items():
            print(f"{name:48s} {seconds:6.2f} s  {written / seconds / 1e6:7.0f} MB/s")
        for flag in ("oflag=direct", "conv=fsync"):
            print(f"{'dd bs=16M ' + flag:48s}          {dd(work / 'dd.bin', size, flag, args.repeat):7.0f} MB/s")
        first, second, adopted = (seconds for seconds, _ in rows.values())
        print(f"aligned tar / tarfile.add time: {first / second:.2f}   around DATA / aligned tar: {adopted / first:.3f}")
    if args.reflink_dir is not None:
        with tempfile.TemporaryDirectory(dir=args.reflink_dir) as tmp:
            work = Path(tmp)
            ms = make_ms(work)
            seconds, written = timed(lambda h: write_aligned_tar(ms, h), work / "aligned.tar", args.repeat)
            subprocess.run(["sync"], check=True)
            time.sleep(1.0)
            before = free_bytes(work)
            target = work / "kept.tar"
            with open(target, "wb") as handle:
                copied = write_aligned_tar(ms, handle)
                handle.flush()
                os.fsync(handle.fileno())
            subprocess.run(["sync"], check=True)
            time.sleep(1.0)
            taken = before - free_bytes(work)
            print(f"reflink volume {args.reflink_dir}: aligned tar {seconds:.3f} s ({written / seconds / 1e6:.0f} MB/s "
                  f"of tar), volume space taken by the kept tar {taken / 1e6:.1f} MB of {written / 1e6:.0f} MB "
                  f"({copied['kernel'] / 1e6:.0f} MB through copy_file_range)")


if __name__ == "__main__":
    main()
