"""VIS_FORMAT=msv4 beside msv2 on an I/O-bound run, and xradio's conversion of our MSv2 in the same run: MB/s and
ratios.

The run: AA* (10,296 baselines), --times dumps x 16 channels of 4.4375 MHz, one source, no smearing (the writing
dominates), as `srcnet-sim run --vis` in its own process. Each case is timed by the run's own log line
("simulate: N blocks in S s": computing and writing the blocks, which overlap) and as the whole run (imports,
planning, writing, staging); cases interleaved, median of --repeat. Then, on the MSv2 of the msv2 case:
xradio's `convert_msv2_to_processing_set` (parallel_mode none, its default Blosc-LZ4), the second pass over the data
a user makes today to get an MSv4. Dask rows: EXECUTOR=dask with --workers LocalCluster workers, where the MSv4's
chunks are written by the workers themselves and the MSv2's by the run's process.

    python benchmarks/bench_msv4.py [--times 96] [--repeat 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
BASE = {"SYNTHETIC_SOURCES": "1", "SMEARING": "off", "FREQ_INC_HZ": "4437500", "OBS_ID": "bench-msv4",
        "RUCIO_NAMESPACE": "bench"}
SIMULATE = re.compile(r"simulate: \d+ blocks in ([\d.]+) s")


def one_run(settings: dict[str, str], root: Path) -> tuple[float, float, dict[str, int]]:
    """(simulate-phase seconds, whole-run seconds, staged file sizes) of one `srcnet-sim run --vis`."""
    out, tmp = root / "out", root / "tmp"
    out.mkdir(parents=True)
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"PYTHONPATH": str(SRC), "OUT_DIR": str(out), "TMPDIR": str(tmp), **BASE, **settings})
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env=env, capture_output=True,
                            text=True, check=False)
    whole = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    simulate = float(SIMULATE.search(result.stderr).group(1))
    sizes = {p.name: p.stat().st_size for p in (out / "bench").iterdir() if not p.name.endswith(".meta")}
    return simulate, whole, sizes


def convert_seconds(tar: Path, root: Path) -> float:
    """xradio's conversion of the staged MSv2 (unpacked first, not timed)."""
    from xradio.measurement_set import convert_msv2_to_processing_set

    with tarfile.open(tar) as archive:
        archive.extractall(root, filter="data")
    started = time.perf_counter()
    convert_msv2_to_processing_set(str(root / "measurements.ms"), str(root / "converted.ps.zarr"),
                                   parallel_mode="none", persistence_mode="w")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    times = {"NUM_TIME_STAMPS": str(args.times)}
    dask = {"EXECUTOR": "dask", "DASK_WORKERS": str(args.workers)}
    cases = {"msv2": {"VIS_FORMAT": "msv2"}, "msv4": {"VIS_FORMAT": "msv4"}, "both": {"VIS_FORMAT": "both"},
             "msv2 dask": {"VIS_FORMAT": "msv2", **dask}, "msv4 dask": {"VIS_FORMAT": "msv4", **dask}}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    sizes: dict[str, dict[str, int]] = {}
    convert: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-msv4-") as scratch:
        for attempt in range(args.repeat):
            for name, settings in cases.items():
                root = Path(scratch) / f"{attempt}-{name.replace(' ', '-')}"
                simulate, whole, sizes[name] = one_run({**times, **settings}, root)
                timings[name].append((simulate, whole))
                if name == "msv2":
                    convert.append(convert_seconds(root / "out" / "bench" / "measurements.ms.tar", root / "convert"))
    median = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
              for name, runs in timings.items()}
    msv2_bytes, msv4_bytes = sizes["msv2"]["measurements.ms.tar"], sizes["msv4"]["measurements.ps.zarr.zip"]
    conversion = statistics.median(convert)
    rows = {name: {"simulate_s": round(s, 2), "run_s": round(w, 2),
                   "MB_per_s": round((msv4_bytes if "msv4" in name else msv2_bytes) / s / 1e6, 1)}
            for name, (s, w) in median.items()}
    report = {
        "machine": os.uname().machine, "cpus": os.cpu_count(), "dumps": args.times, "repeat": args.repeat,
        "staged_bytes": {"msv2_tar": msv2_bytes, "msv4_zip": msv4_bytes, "ratio": round(msv4_bytes / msv2_bytes, 3)},
        "cases": rows,
        "xradio_convert_s": round(conversion, 2),
        "ratios": {
            "msv4/msv2 simulate-phase time": round(median["msv4"][0] / median["msv2"][0], 3),
            "msv4/msv2 whole run": round(median["msv4"][1] / median["msv2"][1], 3),
            "msv4 / (msv2 + xradio convert), whole run": round(median["msv4"][1] / (median["msv2"][1] + conversion), 3),
            "both/msv2 whole run": round(median["both"][1] / median["msv2"][1], 3),
            "msv4/msv2 simulate-phase, dask": round(median["msv4 dask"][0] / median["msv2 dask"][0], 3),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
