"""Cube imaging benchmark: `srcnet-sim image --channels-out` beside WSClean `-channels-out` on the same MS, in one run.

The MS is written by srcnet-sim: SKA-Mid AA* (144 dishes), --times dumps over 4 h, --channels channels of 26 kHz
from 1.4 GHz (5.5 km/s), SKY_MODEL=SYNTHETIC_HI (--galaxies HI galaxies), thermal noise on. Both imagers make a
cube of one plane per channel, --npixel^2 pixels of --cell arcsec, uniform weighting, each plane cleaned with the
seed's parameters (-niter 50000 -mgain 0.8 -auto-threshold 3), baselines beyond the grid left out (WSClean's
behaviour, our --allow-uv-cut). WSClean runs twice: with its default gridder (w-stacking, as the seed ran it) and
with -use-wgridder (ducc0's, as ours); it also writes its MFS images (it always does with -channels-out). Times are wall-clock seconds of each command, best of --repeat,
the two interleaved; peak memory is each child's maximum resident set (tests/peak_memory.py).

Fidelity, per plane: 1 - the correlation of our dirty and restored planes with each WSClean's, and the ratio of
the dirty planes' rms (the planes are mostly noise: the galaxies fill 3 beam FWHM, the image a fraction of one).

    python benchmarks/bench_cube.py [--channels 64] [--times 24] [--npixel 1024] [--cell 1.5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_imaging import timed  # noqa: E402  (seconds and peak MB of a child process)

WIDTH_HZ, START_HZ = 26e3, 1.4e9
CLEAN = ["-niter", "50000", "-mgain", "0.8", "-auto-threshold", "3"]


def run_env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    """The settings of the benchmark's run (the MS's; with the image grid, those `estimate --cube` predicts)."""
    return {**os.environ, "OUT_DIR": str(work), "SKY_MODEL": "SYNTHETIC_HI", "SYNTHETIC_SOURCES": str(args.galaxies),
            "NUM_TIME_STAMPS": str(args.times), "NOISE": "on", "START_FREQ_HZ": str(START_HZ),
            "END_FREQ_HZ": str(START_HZ + (args.channels + 0.5) * WIDTH_HZ), "FREQ_INC_HZ": str(WIDTH_HZ),
            "IMAGING_NPIXEL": str(args.npixel), "IMAGING_CELLSIZE": repr(float(np.radians(args.cell / 3600)))}


def estimated_cube_seconds(work: Path, args: argparse.Namespace) -> tuple[float, str]:
    """`srcnet-sim estimate --cube`'s cube imaging time (seconds) for this run, and its two lines."""
    out = subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "estimate", "--cube"], env=run_env(work, args),
                         check=True, capture_output=True, text=True).stdout.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("cube imaging time"))
    text = out[at].split()[3].rstrip(":")
    seconds = float(text) if out[at].split()[4].startswith("s") else \
        sum(float(v) * m for v, m in zip(re.findall(r"[\d.]+", text)[::-1], (1, 60, 3600)))
    return seconds, "\n".join(out[at:at + 2])


def make_ms(work: Path, args: argparse.Namespace) -> Path:
    env = run_env(work, args)
    subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env=env, check=True, capture_output=True)
    with tarfile.open(work / "testing" / "measurements.ms.tar") as archive:
        archive.extractall(work, filter="data")
    return work / "measurements.ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--times", type=int, default=24)
    parser.add_argument("--galaxies", type=int, default=500)
    parser.add_argument("--npixel", type=int, default=1024)
    parser.add_argument("--cell", type=float, default=1.5, help="arcsec")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cube-"))
    ms = make_ms(work, args)
    n = args.npixel
    ours_cmd = [sys.executable, "-m", "srcnet_sim.cli", "image", str(ms), "--npixel", str(n), "--cellsize-arcsec",
                str(args.cell), "--channels-out", "0", "--allow-uv-cut", "--niter", "50000", "--mgain", "0.8",
                "--auto-threshold", "3", "--out-dir", str(work), "--name", "ours", "--overwrite"]
    def wsclean(name: str, *gridder: str) -> list[str]:
        return ["wsclean", "-quiet", *gridder, "-size", str(n), str(n), "-scale", f"{args.cell}asec", "-weight",
                "uniform", *CLEAN, "-pol", "I", "-channels-out", str(args.channels), "-name", str(work / name), str(ms)]

    commands = {"srcnet-sim image --channels-out 0": ours_cmd, "wsclean (default gridder, as the seed)": wsclean("ws"),
                "wsclean -use-wgridder": wsclean("wsw", "-use-wgridder")}
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    peak_mb = dict.fromkeys(commands, 0.0)
    for _ in range(args.repeat):
        for name, command in commands.items():
            s, mb = timed(command)
            seconds[name].append(s)
            peak_mb[name] = max(peak_mb[name], mb)
    estimate_s, estimate_text = estimated_cube_seconds(work, args)
    dirty = fits.getdata(work / "ours-dirty-cube.fits")[0]
    restored = fits.getdata(work / "ours-cube.fits")[0]
    planes = fits.getheader(work / "ours-cube.fits")["NAXIS3"]
    print(f"MS: AA*, {args.times} dumps x {args.channels} channels of 26 kHz, {args.galaxies} SYNTHETIC_HI galaxies, "
          f"noise on; cube {planes} planes of {n}^2 px at {args.cell} arcsec; {os.cpu_count()} cores")
    ours = min(seconds["srcnet-sim image --channels-out 0"])
    for name in commands:
        print(f"{name:40s} {min(seconds[name]):7.1f} s {peak_mb[name]:6.0f} MB  ratio to srcnet-sim "
              f"{min(seconds[name]) / ours:5.2f}x")
    print(f"srcnet-sim estimate --cube: {estimate_s:.1f} s predicted, measured / predicted {ours / estimate_s:.2f}\n"
          f"{estimate_text}")
    for prefix, label in (("ws", "default gridder"), ("wsw", "-use-wgridder")):
        dirty_corr, restored_corr, rms_ratio = [], [], []
        for k in range(args.channels):
            ws_dirty = fits.getdata(work / f"{prefix}-{k:04d}-dirty.fits")[0, 0]
            ws_image = fits.getdata(work / f"{prefix}-{k:04d}-image.fits")[0, 0]
            dirty_corr.append(np.corrcoef(dirty[k].ravel(), ws_dirty.ravel())[0, 1])
            restored_corr.append(np.corrcoef(restored[k].ravel(), ws_image.ravel())[0, 1])
            rms_ratio.append(np.std(dirty[k]) / np.std(ws_dirty))
        print(f"per plane vs WSClean {label}: 1 - correlation of the dirty planes, median {1 - np.median(dirty_corr):.2e} "
              f"(worst {1 - min(dirty_corr):.2e}), of the restored {1 - np.median(restored_corr):.2e} (worst "
              f"{1 - min(restored_corr):.2e}); dirty rms ours / WSClean median {np.median(rms_ratio):.4f}")

if __name__ == "__main__":
    main()
