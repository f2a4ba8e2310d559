"""A rehearsal of the seed's large run: its shape (1,024 channels in the default band, 10 s dumps, the default
10,000-source sky), fewer dumps, with `estimate`'s figures beside the real run's.

The seed's large run is 4 h of 10 s dumps (1,440) x 1,024 channels: `estimate` says about 0.5 TiB of MS. This
runs --dumps of them (default 6: a 2 GB MS) and prints
- `estimate`'s prediction (the MS's expected bytes, the simulation's time from its calibration on this machine)
  beside what the run did (the staged tar's bytes, the simulate phase's time), and their ratios against the
  issue's tolerances (bytes within 10 %, time within 30 %);
- the run's phases (set-up, simulate + write, staging) with their rates.
The phases come from the run's log lines as they arrive (benchmarks/bench_io_run.py). Nothing is asserted.

    python benchmarks/rehearsal.py [--dumps 6] [--work DIR] [--env KEY=VALUE ...] [--args --vis ...]
    python benchmarks/rehearsal.py --dumps 1440 --env BACKEND=gpu    # the full run (a GPU node: large_run_gpu.sh)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from bench_io_run import stamped_run
from srcnet_sim.config import load_settings
from srcnet_sim.run.calibrate import predict_plan
from srcnet_sim.run.plan import plan

DUMP_S = 10.0
CHANNELS = 1024
BAND_HZ = (1.304e9, 1.375e9)  # the seed's default band
BYTES_TOLERANCE, TIME_TOLERANCE = 0.10, 0.30


def large_run_settings(dumps: int) -> dict[str, str]:
    """Env vars of the seed's large run cut to `dumps` dumps of 10 s: 1,024 channels across the default band."""
    return {"START_FREQ_HZ": repr(BAND_HZ[0]), "END_FREQ_HZ": repr(BAND_HZ[1]),
            "FREQ_INC_HZ": repr((BAND_HZ[1] - BAND_HZ[0]) / CHANNELS),
            "OBS_LENGTH_HOURS": repr(dumps * DUMP_S / 3600.0), "NUM_TIME_STAMPS": str(dumps)}


def estimate(settings: dict[str, str]) -> dict[str, float]:
    """What `srcnet-sim estimate --vis` predicts for `settings`: bytes of the MS, seconds of the simulation."""
    run_plan = plan(load_settings(environ=settings), {"vis"})
    e = run_plan.estimate
    p, _ = predict_plan(run_plan)
    return {"channels": e.n_channels, "dumps": e.n_times, "ms_bytes": e.ms_expected_bytes,
            "simulate_s": p.total_s, "compute_s": p.compute_s, "write_s": p.write_s}


def verdict(ratio: float, tolerance: float) -> str:
    return "within" if abs(ratio - 1.0) <= tolerance else "OUTSIDE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dumps", type=int, default=6)
    parser.add_argument("--work", type=Path, default=None, help="where TMPDIR and OUT_DIR go (default TMPDIR)")
    parser.add_argument("--env", nargs="*", default=[], help="extra settings, KEY=VALUE (e.g. BACKEND=gpu)")
    args = parser.parse_args()
    settings = {**large_run_settings(args.dumps), **dict(item.split("=", 1) for item in args.env)}
    print("settings: " + " ".join(f"{k}={v}" for k, v in settings.items()))
    predicted = estimate(settings)
    if predicted["channels"] != CHANNELS:
        raise SystemExit(f"{predicted['channels']} channels, not {CHANNELS}: check START/END/FREQ_INC_HZ")
    print(f"estimate: MS {predicted['ms_bytes'] / 2**30:.2f} GiB, simulation {predicted['simulate_s']:.0f} s "
          f"(compute {predicted['compute_s']:.0f} s, writing {predicted['write_s']:.0f} s)")
    if settings.get("BACKEND", "cpu") != "cpu":
        print("  (estimate calibrates the CPU predictor: its time is not the GPU's; the bytes still compare)")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        wall, staged, phases = stamped_run(Path(tmp), settings)
    simulate_s = phases["simulate + write"]
    size_ratio, time_ratio = staged / predicted["ms_bytes"], simulate_s / predicted["simulate_s"]
    print(f"run: {wall:.1f} s, staged {staged / 2**30:.2f} GiB")
    for name, seconds in phases.items():
        rate = f"{staged / seconds / 1e6:7.0f} MB/s" if name in ("simulate + write", "staging + exit") else ""
        print(f"    {name:34s} {seconds:8.1f} s  {rate}")
    print(f"bytes: staged / estimate = {size_ratio:.3f} ({verdict(size_ratio, BYTES_TOLERANCE)} "
          f"±{BYTES_TOLERANCE:.0%})")
    print(f"time:  simulate phase / estimate = {time_ratio:.2f} ({verdict(time_ratio, TIME_TOLERANCE)} "
          f"±{TIME_TOLERANCE:.0%})")
    full = 1440 / args.dumps
    print(f"the full run ({1440} dumps) at these rates: {staged * full / 2**30:.0f} GiB, simulate phase about "
          f"{math.ceil(simulate_s * full / 60)} min, staging about {math.ceil(phases['staging + exit'] * full / 60)} min")
    print(json.dumps({"settings": settings, "estimate": predicted, "run_s": wall, "staged_bytes": staged,
                      "phases_s": phases, "bytes_ratio": size_ratio, "time_ratio": time_ratio}))


if __name__ == "__main__":
    main()
