"""The smearing kernel alone over thread counts: `weighted_baseline_sums` for one time step of the default run
(AA*, 10,000 sources with 10 % Gaussians, 4 channels, bandwidth smearing), best of several calls per thread count,
in one process (numba.set_num_threads), with the command line's thread settings (runtime.configure_process).

    python benchmarks/bench_kernel.py                           # 1, 2, 4, ... up to the cores
    python benchmarks/bench_kernel.py SMEARING=bandwidth+time   # settings (as environment variables) of the run
"""

from __future__ import annotations

import sys
import time

from srcnet_sim.run.runtime import configure_process

configure_process()  # before numpy and numba load

import numba  # noqa: E402
import numpy as np  # noqa: E402

from bench_scale import curve_points  # noqa: E402
from srcnet_sim.run.plan import plan  # noqa: E402
from srcnet_sim.config import load_settings  # noqa: E402
from srcnet_sim.constants import SPEED_OF_LIGHT_M_S  # noqa: E402
from srcnet_sim.simulate.baseline_kernel import weighted_baseline_sums  # noqa: E402
from srcnet_sim.simulate.observation import _StepInputs  # noqa: E402


def main() -> None:
    settings = dict(argument.split("=", 1) for argument in sys.argv[1:])
    obs = plan(load_settings(environ=settings)).observation.with_geometry()
    run = _StepInputs.of(obs, slice(None)).pieces[0]
    terms = run.terms
    rate = (obs.dish_uvw_rate_m_s[0] @ terms.lmn.T) / SPEED_OF_LIGHT_M_S if run.smear_time else None
    args = (obs.dish_uvw_m[0], terms.lmn, terms.beams, run.dish_type, run.freq_hz, terms.stokes, 1, run.ant1, run.ant2,
            run.channel_width_hz, rate, obs.interval_s, terms.gaussian, np.float32)
    weighted_baseline_sums(*args)  # compile or load
    print(f"threading layer {numba.threading_layer()}; {len(terms.lmn)} sources, {len(run.ant1)} baselines, "
          f"{len(run.freq_hz)} channels, smearing {obs.smearing}")
    most = numba.config.NUMBA_NUM_THREADS
    first = None
    for threads in curve_points(most):
        numba.set_num_threads(threads)
        seconds = []
        for _ in range(7):
            start = time.perf_counter()
            weighted_baseline_sums(*args)
            seconds.append(time.perf_counter() - start)
        best = min(seconds)
        first = first or best
        print(f"{threads:3d} threads: {1e3 * best:7.1f} ms per time step, {first / best:5.2f}x one thread", flush=True)

if __name__ == "__main__":
    main()
