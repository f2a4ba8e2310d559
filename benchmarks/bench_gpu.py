"""GPU benchmark: matvis GPU, srcnet-sim GPU and srcnet-sim CPU (all cores) side by side, in one run.

Workloads: the predictor benchmark's (SKA-Mid AA*, 144 dishes, 10,296 baselines, 10,000 sources,
24 dumps x 4 channels) and the same with 100,000 sources. Times are the second call of each
(compilation and CUDA context start-up excluded), with the device synchronised:
- matvis `simulate_vis(use_gpu=True)`: 1 unpolarised product, point sources, no smearing (all it models);
- srcnet-sim predictor (`simulate`, all 4 correlations, visibilities on the host): like for like
  (points, smearing off) and the default (bandwidth smearing on), on the GPU and on all CPU cores;
- the per-baseline CUDA kernel alone, in terms/s (source x baseline x channel x dump per second),
  for a few launch shapes (the new grouped kernel and the first one);
- the GPU predictor's stages (phasors, smearing terms, gemm, kernel, assembly, device->host copy, the host
  rest of `simulate`), each synchronised, for the default and the point-source workload at 10,000 sources.
Writes bench_gpu.json to $OUT when that is set.

    python benchmarks/bench_gpu.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

RESULTS: dict = {}
FAILED: list[str] = []


def log(line: str) -> None:
    print(line, flush=True)


def observation(n_src: int, n_time: int, smearing: str, points_only: bool, telescope: str = "SKA-MID-AAstar"):
    from srcnet_sim.config import load_settings
    from srcnet_sim.run.plan import plan

    settings = load_settings(environ={"SYNTHETIC_SOURCES": str(n_src), "NUM_TIME_STAMPS": str(n_time),
                                      "SMEARING": smearing, "TELESCOPE": telescope})
    obs = plan(settings).observation
    if points_only:  # matvis models point sources only
        obs = dataclasses.replace(obs, sky=dataclasses.replace(obs.sky, major_fwhm_rad=np.zeros(len(obs.sky))))
    return obs


def timed(fn, repeat: int = 1, warm_up=None) -> float:
    """Seconds of the fastest of `repeat` calls after one warm-up call (of `warm_up`, default `fn`)."""
    (warm_up or fn)()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_srcnet(obs, backend: str, n_steps: int | None = None) -> float:
    """Seconds for `simulate` over the first n_steps dumps (all by default), warm."""
    import cupy

    from srcnet_sim.simulate.observation import simulate
    from srcnet_sim.simulate.predictors import make_predictor

    indices = range(len(obs.times_s) if n_steps is None else n_steps)
    predictor = make_predictor(backend)

    def go(steps=indices):
        for _ in simulate(obs, steps, predictor=predictor):
            pass
        cupy.cuda.Device().synchronize()

    return timed(go, warm_up=lambda: go(range(1)))  # one dump compiles every kernel


def run_matvis(obs) -> float:
    import cupy
    from matvis import simulate_vis
    from matvis_peer import simulate_vis_arguments

    arguments = simulate_vis_arguments(obs)

    def go():
        simulate_vis(**arguments, use_gpu=True)
        cupy.cuda.Device().synchronize()

    return timed(go)


def measured(row: dict, key: str, fn, *args):
    """row[key] = fn(*args); a failure is logged and recorded, and the benchmark goes on."""
    try:
        row[key] = fn(*args)
    except Exception as exc:  # one broken peer must not lose the other figures of a one-shot GPU run
        log(f"FAILED {key}: {type(exc).__name__}: {exc}")
        FAILED.append(key)
        row[key] = None
        row.setdefault("errors", {})[key] = f"{type(exc).__name__}: {exc}"
    return row[key]


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:6.1f}x" if a and b else "   n/a"


def seconds(value: float | None) -> str:
    return f"{value:8.3f} s" if value is not None else "  failed"


# (rows per group, channels per block, blocks per multiprocessor, sources per tile); the first is the
# predictor's default (predict_gpu's module constants).
LAUNCH_SHAPES = ((8, 4, 32, 32), (8, 4, 8, 32), (8, 4, 16, 64), (8, 2, 32, 32), (4, 4, 32, 32), (16, 2, 32, 32),
                 (8, 4, 4, 32))
TUNED = ("ROWS_PER_GROUP", "CHANNELS_PER_BLOCK", "BLOCKS_PER_SM", "SOURCES_PER_TILE")


def kernel_rate(obs, n_steps: int, shapes=LAUNCH_SHAPES) -> dict:
    """terms/s of the per-baseline kernel alone (bandwidth smearing, single precision, Stokes I, all sources as
    points) for launch shapes (see LAUNCH_SHAPES)."""
    import cupy

    from srcnet_sim.simulate import predict_gpu
    from srcnet_sim.instrument.beams import dish_types

    terms = obs.source_terms()
    _, dish_type = dish_types(obs.beam, obs.telescope.diameters_m)
    pred = predict_gpu.GpuPredictor(cupy)
    dev = pred._upload_terms(terms, np.float32)
    uvw = cupy.asarray(obs.dish_uvw(obs.times_s[:n_steps]))
    n_src, n_dish, n_chan = len(terms.lmn), obs.telescope.n_dish, len(obs.freq_hz)
    z, path = pred._phasors(uvw, dev, cupy.asarray(dish_type), obs.freq_hz, slice(0, n_chan), 0, n_src, np.complex64)
    bw = pred._bandwidth_terms(path, obs.channel_width_hz, np.complex64)
    out = cupy.zeros((n_steps, n_chan, 1, 2, n_dish, n_dish), dtype=np.float32)
    stokes = cupy.ascontiguousarray(dev["stokes"][:, :1])
    per_c = cupy.asarray(obs.freq_hz / 299792458.0, dtype=np.float32)
    half = cupy.zeros(n_chan, dtype=np.float32)
    gauss = dev["gaussian"]
    n_terms = n_src * (n_dish * (n_dish - 1) // 2) * n_chan * n_steps
    rates = {}
    defaults = tuple(getattr(predict_gpu, name) for name in TUNED)
    for shape in shapes:
        for name, value in zip(TUNED, shape):
            setattr(predict_gpu, name, value)

        def go():
            pred._launch(z, stokes, bw, None, half, per_c, uvw, gauss, n_src, out, np.float32)
            cupy.cuda.Device().synchronize()

        seconds = timed(go, repeat=3)
        rows, ch, blocks, tile = shape
        rates[f"rows={rows} channels={ch} blocks_per_sm={blocks} tile={tile}"] = n_terms / seconds
    for name, value in zip(TUNED, defaults):
        setattr(predict_gpu, name, value)
    return rates


def breakdown(obs) -> dict:
    """Seconds of each stage of the GPU predictor over one warm `simulate` of `obs` (device synchronised
    around every stage), and the rest of `simulate` (host: source terms, UVW, noise, steps)."""
    import cupy

    from srcnet_sim.simulate.observation import simulate
    from srcnet_sim.simulate.predict_gpu import GpuPredictor
    from srcnet_sim.simulate.predictors import GpuStrategy

    predictor = GpuPredictor(cupy)
    for _ in simulate(obs, range(1), predictor=GpuStrategy(predictor)):  # compiles every kernel
        pass
    predictor.timings = {}
    start = time.perf_counter()
    for _ in simulate(obs, predictor=GpuStrategy(predictor)):
        pass
    cupy.cuda.Device().synchronize()
    total = time.perf_counter() - start
    stages = dict(predictor.timings)
    stages["rest of simulate (host)"] = total - sum(stages.values())
    stages["total (synchronised)"] = total
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads (a smoke test of the script)")
    parser.add_argument("--cpu-steps-100k", type=int, default=4,
                        help="dumps the CPU predictor runs at 100,000 sources (its time is scaled to 24)")
    args = parser.parse_args()
    import cupy

    from srcnet_sim.simulate.predictors import gpu_device_name

    n_time = 2 if args.quick else 24
    sizes = (40, 400) if args.quick else (10_000, 100_000)
    telescope = "SKA-MID-AA1" if args.quick else "SKA-MID-AAstar"
    device = gpu_device_name() or "no CUDA device (CuPy stand-in)"
    RESULTS.update({"device": device, "cpu_cores": os.cpu_count(), "telescope": telescope, "n_time": n_time,
                    "n_chan": 4, "cupy": cupy.__version__, "numpy": np.__version__})
    log(f"device: {device}; CPU cores: {os.cpu_count()}; {telescope}, {n_time} dumps x 4 channels")

    obs = observation(sizes[0], n_time, "bandwidth", False, telescope)
    rates = measured(RESULTS, "kernel_terms_per_s", kernel_rate, obs, n_time) or {}
    for shape, rate in rates.items():
        log(f"per-baseline kernel, bandwidth smearing, single, {sizes[0]} sources, {shape}: {rate:.3g} terms/s")

    for name, smearing, points in (("default", "bandwidth", False), ("points, no smearing", "off", True)):
        stages = measured(RESULTS, f"breakdown {name}", breakdown,
                          observation(sizes[0], n_time, smearing, points, telescope)) or {}
        log(f"GPU predictor stages, {name}, {sizes[0]} sources: "
            + ", ".join(f"{stage} {seconds:.4f} s" for stage, seconds in stages.items()))

    for n_src in sizes:
        row = RESULTS.setdefault(f"sources_{n_src}", {})
        if n_src != sizes[0]:
            big = observation(n_src, n_time, "bandwidth", False, telescope)
            rates = measured(row, "kernel_terms_per_s", kernel_rate, big, n_time, (LAUNCH_SHAPES[0], LAUNCH_SHAPES[-1]))
            for shape, rate in (rates or {}).items():
                log(f"per-baseline kernel, bandwidth smearing, single, {n_src} sources, {shape}: {rate:.3g} terms/s")
            del big
        like = observation(n_src, n_time, "off", True, telescope)
        default = observation(n_src, n_time, "bandwidth", False, telescope)
        cpu_steps = n_time if n_src <= 10_000 else min(n_time, args.cpu_steps_100k)
        row["srcnet_cpu_default_dumps_timed"] = cpu_steps
        matvis = measured(row, "matvis_gpu_s", run_matvis, like)
        gpu_like = measured(row, "srcnet_gpu_points_nosmear_s", run_srcnet, like, "gpu")
        gpu = measured(row, "srcnet_gpu_default_s", run_srcnet, default, "gpu")
        cpu = measured(row, "srcnet_cpu_default_s", run_srcnet, default, "cpu", cpu_steps)
        if cpu is not None:
            cpu = row["srcnet_cpu_default_s"] = cpu * n_time / cpu_steps
        log(f"--- {n_src} sources, {n_time} dumps x 4 channels ---")
        log(f"matvis 1 product, GPU, points, no smearing        {seconds(matvis)}")
        log(f"srcnet-sim GPU, 4 corr, points, no smearing       {seconds(gpu_like)}   {ratio(matvis, gpu_like)} matvis GPU")
        log(f"srcnet-sim GPU, 4 corr, default (bandwidth smear) {seconds(gpu)}   {ratio(matvis, gpu)} matvis GPU")
        scaled = "" if cpu_steps == n_time else f" (timed over {cpu_steps} dumps, scaled to {n_time})"
        log(f"srcnet-sim CPU {os.cpu_count():2d} cores, default               {seconds(cpu)}   "
            f"GPU {ratio(cpu, gpu)} faster{scaled}")
    default_row = RESULTS.get(f"sources_{sizes[0]}", {})
    kernel = RESULTS.get("kernel_terms_per_s") or {}
    log(f"targets: default predictor (bandwidth smearing) vs matvis GPU "
        f"{ratio(default_row.get('matvis_gpu_s'), default_row.get('srcnet_gpu_default_s'))} (>= 10x); "
        f"kernel {next(iter(kernel.values()), 0):.3g} terms/s at the default launch shape, "
        f"{max(kernel.values(), default=0):.3g} at the best (>= 5e11)")
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "bench_gpu.json"), "w") as f:
            json.dump(RESULTS, f, indent=2)
    json.dump(RESULTS, sys.stdout, indent=2)
    print()
    if FAILED:
        sys.exit(f"failed: {', '.join(FAILED)} (see FAILED above)")


if __name__ == "__main__":
    main()
