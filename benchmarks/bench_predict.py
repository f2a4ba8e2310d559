"""Predictor benchmark: srcnet-sim beside matvis on the same workload, in one run.

Workload (the issue's default): SKA-Mid AA* (144 dishes, 10,296 baselines), 10,000 sources,
24 time steps, 4 channels. matvis computes visibilities only (one unpolarised product, no
smearing), so srcnet-sim is timed two ways: its predictor alone with smearing off (like for like),
and the whole `run --vis` (4 correlations, MS written) with smearing off and with the default
bandwidth smearing. Peak memory is each child process's maximum resident set.

    python benchmarks/bench_predict.py [--sources N] [--times N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peak_memory import run_measured  # noqa: E402

CHILD = r"""
from srcnet_sim.run.runtime import configure_process
configure_process()  # the thread settings of the command line, before numpy and numba load
import dataclasses, json, sys, time, numpy as np
which, n_src, n_time = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from srcnet_sim.config import load_settings
from srcnet_sim.run.plan import plan
settings = load_settings(environ={"SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time), "SMEARING": "off"})
obs = plan(settings).observation
# matvis models point sources only: both simulators get the synthetic field's sources as points.
obs = dataclasses.replace(obs, sky=dataclasses.replace(obs.sky, major_fwhm_rad=np.zeros(len(obs.sky))))
if which == "ours":
    from srcnet_sim.simulate.observation import simulate
    list(simulate(obs, range(1)))  # compile the kernels outside the timing
    t0 = time.perf_counter()
    for step in simulate(obs):
        pass
    print(json.dumps({"seconds": time.perf_counter() - t0}))
else:
    sys.path.insert(0, sys.argv[4])  # benchmarks/: the peer's arguments
    from matvis import simulate_vis
    from matvis_peer import simulate_vis_arguments
    arguments = simulate_vis_arguments(obs)
    t0 = time.perf_counter()
    simulate_vis(**arguments)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def child(which: str, n_src: int, n_time: int) -> dict:
    """The CHILD workload in its own process: its result line, with its own peak resident MB."""
    measured = run_measured([sys.executable, "-c", CHILD, which, str(n_src), str(n_time), os.path.dirname(__file__)])
    if measured.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{measured.stderr}")
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = measured.peak_bytes / 2**20
    return result


def whole_run(n_src: int, n_time: int, smearing: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OUT_DIR": out, "SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time), "SMEARING": smearing}
        t0 = time.perf_counter()
        measured = run_measured([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env)
        seconds = time.perf_counter() - t0
        if measured.returncode != 0:
            raise RuntimeError(measured.stderr)
    return {"seconds": seconds, "peak_rss_mb": measured.peak_bytes / 2**20}


def complex_matmul_rate() -> float:
    """The machine's complex64 matrix-multiply rate (flop/s) on the predictor's shapes (144 x 10,000)."""
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    z = np.asfortranarray((rng.normal(size=(10000, 144)) + 1j * rng.normal(size=(10000, 144))).astype(np.complex64))
    blas.cgemm(1.0, z, z, trans_a=2)
    t0 = time.perf_counter()
    for _ in range(20):
        blas.cgemm(1.0, z, z, trans_a=2)
    return 20 * 8 * 144 * 144 * 10000 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--times", type=int, default=24)
    args = parser.parse_args()
    n, t = args.sources, args.times
    print(f"workload: AA* 144 dishes, {n} sources, {t} time steps, 4 channels")
    theirs = child("matvis", n, t)
    ours = child("ours", n, t)
    run_off = whole_run(n, t, "off")
    run_bw = whole_run(n, t, "bandwidth")
    rate = complex_matmul_rate()
    # V = Z Z^H for 4 channels x t steps, counted as the full complex product (8 n_dish^2 n_src flop).
    product_flop = 8 * 144**2 * n * 4 * t
    print(f"matvis simulate_vis (1 product)          {theirs['seconds']:8.2f} s   peak {theirs['peak_rss_mb']:7.0f} MB")
    print(f"srcnet-sim predictor (4 corr, smearing off) {ours['seconds']:5.2f} s   peak {ours['peak_rss_mb']:7.0f} MB"
          f"   speed-up vs matvis {theirs['seconds'] / ours['seconds']:.1f}x")
    print(f"srcnet-sim run --vis, smearing off, MS   {run_off['seconds']:8.2f} s   peak {run_off['peak_rss_mb']:7.0f} MB"
          f"   speed-up vs matvis {theirs['seconds'] / run_off['seconds']:.1f}x")
    print(f"srcnet-sim run --vis, bandwidth smearing {run_bw['seconds']:8.2f} s   peak {run_bw['peak_rss_mb']:7.0f} MB")
    print(f"machine complex64 matmul rate            {rate / 1e9:8.1f} GFLOP/s")
    print(f"predictor rate (V=ZZ^H flop / predictor time) {product_flop / ours['seconds'] / 1e9:5.1f} GFLOP/s"
          f" = {100 * product_flop / ours['seconds'] / rate:.0f} % of the matmul rate")


if __name__ == "__main__":
    main()
