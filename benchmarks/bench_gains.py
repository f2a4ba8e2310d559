"""GAINS=on, RFI=on and BEAM=everybeam beside the ideal instrument on the default run: their cost, as ratios.

Two measurements, each on/off interleaved so that the machine's drift falls on both:
- the simulation stage in one process: every time step of the default observation (AA*, 10,000 sources,
  24 dumps x 4 channels; its first channel reaches Galileo E6) through `simulate`, the kernels compiled first;
  best of --repeat;
- the whole `srcnet-sim run --vis --truth` as a user runs it (its own process: imports, planning, MS,
  caltables and RFI truth written, staging); median of --repeat.

    python benchmarks/bench_gains.py [--repeat 3] [--sources 10000] [--times 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


CASES = {"off": {}, "gains": {"GAINS": "on"}, "rfi": {"RFI": "on"}, "gains+rfi": {"GAINS": "on", "RFI": "on"},
         "everybeam": {"BEAM": "everybeam"}}


def stage_seconds(n_src: int, n_time: int, repeat: int) -> dict[str, float]:
    """Best time of `simulate` over every step, for each of CASES."""
    from srcnet_sim.run.runtime import configure_process

    configure_process()
    from srcnet_sim.config import load_settings
    from srcnet_sim.run.plan import plan
    from srcnet_sim.simulate.observation import simulate

    settings = load_settings(environ={"SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time), "GAINS": "on",
                                      "RFI": "on"})
    full = plan(settings).observation.with_geometry()
    observations = {"off": dataclasses.replace(full, gains=None, rfi=None),
                    "gains": dataclasses.replace(full, rfi=None), "rfi": dataclasses.replace(full, gains=None),
                    "gains+rfi": full, "everybeam": dataclasses.replace(full, gains=None, rfi=None, beam="everybeam")}
    for obs in observations.values():
        list(simulate(obs, range(1)))  # compile outside the timing
    best = {name: float("inf") for name in observations}
    for _ in range(repeat):
        for name, obs in observations.items():
            t0 = time.perf_counter()
            for _step in simulate(obs):
                pass
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run_seconds(n_src: int, n_time: int, repeat: int) -> dict[str, float]:
    """Median wall time of the whole CLI run, for each of CASES."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(repeat):
        for name, settings in CASES.items():
            with tempfile.TemporaryDirectory() as out:
                env = {**os.environ, "OUT_DIR": out, "SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time),
                       "OBS_ID": "bench-gains", **settings}
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", "--truth"], env=env, check=True,
                               capture_output=True)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--times", type=int, default=24)
    args = parser.parse_args()
    stage = stage_seconds(args.sources, args.times, args.repeat)
    whole = run_seconds(args.sources, args.times, args.repeat)
    print(json.dumps({"sources": args.sources, "time_steps": args.times, "cpus": os.cpu_count(),
                      "simulate_s": stage, "simulate_ratio_to_off": {k: v / stage["off"] for k, v in stage.items()},
                      "run_s": whole, "run_ratio_to_off": {k: v / whole["off"] for k, v in whole.items()}}, indent=1))


if __name__ == "__main__":
    main()
