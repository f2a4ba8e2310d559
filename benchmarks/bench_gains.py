"""GAINS=on beside GAINS=off on the default run: the cost of the corruption, as a ratio.

Two measurements, each on/off interleaved so that the machine's drift falls on both:
- the simulation stage in one process: every time step of the default observation (AA*, 10,000 sources,
  24 dumps x 4 channels) through `simulate`, the kernels compiled first; best of --repeat;
- the whole `srcnet-sim run --vis --truth` as a user runs it (its own process: imports, planning, MS and
  caltables written, staging); median of --repeat.

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


def stage_seconds(n_src: int, n_time: int, repeat: int) -> dict[str, float]:
    """Best time of `simulate` over every step, with the observation's gains and without them."""
    from srcnet_sim.run.runtime import configure_process

    configure_process()
    from srcnet_sim.config import load_settings
    from srcnet_sim.run.plan import plan
    from srcnet_sim.simulate.observation import simulate

    settings = load_settings(environ={"SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time), "GAINS": "on"})
    with_gains = plan(settings).observation.with_geometry()
    ideal = dataclasses.replace(with_gains, gains=None)
    for obs in (ideal, with_gains):
        list(simulate(obs, range(1)))  # compile outside the timing
    best = {"off": float("inf"), "on": float("inf")}
    for _ in range(repeat):
        for name, obs in (("off", ideal), ("on", with_gains)):
            t0 = time.perf_counter()
            for _step in simulate(obs):
                pass
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run_seconds(n_src: int, n_time: int, repeat: int) -> dict[str, float]:
    """Median wall time of the whole CLI run, GAINS off and on."""
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeat):
        for gains in ("off", "on"):
            with tempfile.TemporaryDirectory() as out:
                env = {**os.environ, "OUT_DIR": out, "GAINS": gains, "SYNTHETIC_SOURCES": str(n_src),
                       "NUM_TIME_STAMPS": str(n_time), "OBS_ID": "bench-gains"}
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", "--truth"], env=env, check=True,
                               capture_output=True)
                times[gains].append(time.perf_counter() - t0)
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
                      "simulate_s": stage, "simulate_ratio_on_off": stage["on"] / stage["off"],
                      "run_s": whole, "run_ratio_on_off": whole["on"] / whole["off"]}, indent=1))


if __name__ == "__main__":
    main()
