"""The I/O-bound run of issue 25, whole, beside `dd` on the same volume in the same run.

The run: `srcnet-sim run --vis` with NUM_TIME_STAMPS=240, FREQ_INC_HZ=4437500 (16 channels of 4.4375 MHz in the
default band), one source, SMEARING=off (a 1.47 GB MS, staged as a tar; the issue's NUM_FREQ_CHANNELS is no setting). Its rate is the staged bytes over the run's wall time (process start to exit);
the phases come from the run's own log lines, stamped here as they arrive (start -> "simulate: N blocks of" ->
"simulate: N blocks in" -> "wrote" -> exit: set-up, simulate + write, closing the MS, staging). Beside it, `dd`
writes as many bytes in 16 MiB blocks with oflag=direct (the device's speed, the issue's yardstick) and with
conv=fsync (through the page cache). Each figure is the best of --repeat, `sync` before each. The simulate +
write phase's own rate (the staged bytes over that phase) is printed beside it: the I/O path without the
process's start-up and staging.

    python benchmarks/bench_io_run.py [--repeat 3] [--work DIR] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_staging import dd

RUN = {"NUM_TIME_STAMPS": "240", "FREQ_INC_HZ": "4437500", "SYNTHETIC_SOURCES": "1", "SMEARING": "off"}
# Log lines that end a phase (the text after "srcnet-sim INFO "), in order, and the phase each ends.
MARKS = (("simulate: ", " blocks of ", "set-up (plan, sky, MS created)"),
         ("simulate: ", " blocks in ", "simulate + write"),
         ("wrote ", "", "MS closed"))
LAST_PHASE = "staging + exit"


def stamped_run(work: Path, settings: dict[str, str], args: tuple[str, ...] = ("--vis",)) -> tuple[float, int, dict[str, float]]:
    """(wall seconds, staged bytes, {phase: seconds}) of `srcnet-sim run ARGS` with `settings` (env vars) in fresh
    OUT_DIR/TMPDIR under `work` (removed after)."""
    out, tmp = work / "out", work / "tmp"
    for directory in (out, tmp):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
    env = {**os.environ, **settings, "OUT_DIR": str(out), "TMPDIR": str(tmp)}
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", "run", *args], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    phases: dict[str, float] = {}
    last, marks = start, list(MARKS)
    for line in proc.stderr:
        message = line.split(" INFO ", 1)[-1]
        if marks and message.startswith(marks[0][0]) and marks[0][1] in message:
            now = time.perf_counter()
            phases[marks.pop(0)[2]] = now - last
            last = now
    if proc.wait() != 0:
        raise SystemExit(f"the run failed (exit {proc.returncode})")
    wall = time.perf_counter() - start
    phases[LAST_PHASE] = wall - (last - start)
    staged = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    for directory in (out, tmp):
        shutil.rmtree(directory, ignore_errors=True)
    return wall, staged, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="a directory on the volume to measure (default TMPDIR)")
    parser.add_argument("--env", nargs="*", default=[], help="extra settings of the run, KEY=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        runs, direct, fsync = [], [], []
        for _ in range(args.repeat):  # interleaved, so that a slow spell of the machine touches all three
            runs.append(stamped_run(work, {**RUN, **extra}))
            size = runs[-1][1]
            direct.append(dd(work / "dd.bin", size, "oflag=direct", 1))
            fsync.append(dd(work / "dd.bin", size, "conv=fsync", 1))
        wall, size, phases = min(runs)
    rate = size / wall / 1e6
    print(f"I/O-bound run ({' '.join(f'{k}={v}' for k, v in {**RUN, **extra}.items())}), best of {args.repeat}:")
    print(f"  staged {size / 1e6:.0f} MB in {wall:.2f} s: {rate:.0f} MB/s "
          f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)} s)")
    for name, seconds in phases.items():
        print(f"    {name:34s} {seconds:6.2f} s")
    print(f"  dd bs=16M oflag=direct {max(direct):6.0f} MB/s   (tries: {', '.join(f'{r:.0f}' for r in direct)})")
    print(f"  dd bs=16M conv=fsync   {max(fsync):6.0f} MB/s   (tries: {', '.join(f'{r:.0f}' for r in fsync)})")
    print(f"  run / dd oflag=direct: {rate / max(direct):.2f}   run / dd conv=fsync: {rate / max(fsync):.2f}")
    path_rate = size / phases[MARKS[1][2]] / 1e6  # the simulate + write phase alone: the I/O path, start-up aside
    print(f"  simulate + write phase: {path_rate:.0f} MB/s, {path_rate / max(direct):.2f} of dd oflag=direct")
    print(json.dumps({"run_s": wall, "staged_bytes": size, "run_mb_s": rate, "phases_s": phases,
                      "simulate_write_mb_s": path_rate, "dd_direct_mb_s": max(direct), "dd_fsync_mb_s": max(fsync)}))


if __name__ == "__main__":
    main()
