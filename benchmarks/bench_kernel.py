"""The smearing kernel alone over thread counts: `weighted_baseline_sums` for one time step of the default run
(AA*, 10,000 sources with 10 % Gaussians, 4 channels, bandwidth smearing), best of several calls per thread count,
in one process (numba.set_num_threads), with the command line's thread and vector settings
(runtime.configure_process), beside the core's measured FMA peak (fma_peak.py) in the same run: the fraction of
peak counts the flops of the weighted complex multiply-adds of the sums, 10 per baseline, channel, Stokes parameter
and source (2 x (multiply + 2 FMAs)), and nothing else the kernel does (smearing weights, Gaussian envelopes,
packing the per-dish terms): an upper bound of the work, a lower bound of the fraction.

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
from fma_peak import peak_gflops  # noqa: E402
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
    peaks = peak_gflops()
    features = configure_process().get("NUMBA_CPU_FEATURES", "")
    bits = 512 if "+avx512f" in features and "-prefer-256-bit" in features else 256
    peak = max(peaks.values())  # the core's: its widest FMAs
    flops = 10 * len(run.ant1) * len(run.freq_hz) * 1 * len(terms.lmn)
    wide = f"{peaks[512]:.1f} GFLOP/s (512-bit)" if 512 in peaks else "no AVX-512"
    print(f"FMA peak of one core: {peaks[256]:.1f} GFLOP/s (256-bit), {wide}; the kernel prefers {bits}-bit vectors; "
          f"{flops / 1e9:.2f} GFLOP of sums per time step")
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
        rate = flops / best / 1e9
        print(f"{threads:3d} threads: {1e3 * best:7.1f} ms per time step, {first / best:5.2f}x one thread, "
              f"{rate:6.1f} GFLOP/s = {rate / (threads * peak):.1%} of {threads} x the core's peak",
              flush=True)

if __name__ == "__main__":
    main()
