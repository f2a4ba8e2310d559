"""Imaging benchmark: srcnet-sim beside WSClean on the same MeasurementSet, in one run.

The MS is the seed's default observation (AA*, 24 x 4 samples) of a 300-source synthetic field,
written by srcnet-sim. Both imagers make a 2024 x 2024 uniform-weighted dirty image with the seed's
cell (FOV / npixel), then a cleaned image with the seed's WSClean parameters (-niter 50000
-mgain 0.8 -auto-threshold 3). WSClean runs with its default gridder, as the seed did. Times are
wall-clock seconds of each command; peak memory is each child process's maximum resident set.

The QA step's cost: `run --vis --dirty --clean --truth --qa` (which includes the QA) is timed
as a whole, then `srcnet-sim qa` on its cleaned image and truth catalogue (the same work, plus
a process start), and the second is printed as a fraction of the first. `--qa-only` measures
just that (the default run has 10,000 sources: `--sources 10000 --qa-only`).

    python benchmarks/bench_imaging.py [--sources 300] [--npixel 2024] [--qa-only]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peak_memory import run_measured  # noqa: E402


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak resident MB) of a child process (its own peak: tests/peak_memory.py)."""
    t0 = time.perf_counter()
    result = run_measured(command, env)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")
    return seconds, result.peak_bytes / 2**20


def qa_cost(out: Path, env: dict[str, str]) -> None:
    """Time a run that makes and stages the QA report, and the QA alone on its products."""
    out.mkdir()
    env = {**env, "OUT_DIR": str(out)}
    run_s, run_mb = timed([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis", "--dirty", "--clean", "--truth", "--qa"], env)
    staged = out / "testing"
    qa_s, qa_mb = timed([sys.executable, "-m", "srcnet_sim.cli", "qa", str(staged / "cleaned.fits"), str(staged / "truth.fits"),
                         "--out-dir", str(out)], env)
    print(f"run --vis --dirty --clean --truth --qa {run_s:7.1f} s {run_mb:7.0f} MB | QA alone (srcnet-sim qa) "
          f"{qa_s:5.1f} s {qa_mb:5.0f} MB = {100 * qa_s / run_s:4.1f} % of the run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--npixel", type=int, default=2024)
    parser.add_argument("--qa-only", action="store_true", help="measure only the QA step's share of a run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        env = {**os.environ, "OUT_DIR": str(out), "SYNTHETIC_SOURCES": str(args.sources), "IMAGING_NPIXEL": str(args.npixel)}
        qa_cost(out / "qa", env)
        if args.qa_only:
            return
        subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", "--vis"], env=env, check=True, capture_output=True)
        with tarfile.open(out / "testing" / "measurements.ms.tar") as archive:  # the MS is staged as a tar
            archive.extractall(out, filter="data")
        ms = out / "measurements.ms"
        from srcnet_sim.config import load_settings
        from srcnet_sim.run.plan import field_of_view_rad

        cell_arcsec = math.degrees(field_of_view_rad(load_settings(environ={})) / args.npixel) * 3600
        size = [str(args.npixel)] * 2
        clean = ["-niter", "50000", "-mgain", "0.8", "-auto-threshold", "3"]
        ours = [sys.executable, "-m", "srcnet_sim.cli", "image", str(ms), "--npixel", str(args.npixel),
                "--cellsize-arcsec", f"{cell_arcsec:.6f}", "--allow-uv-cut", "--no-preview", "--out-dir", str(out)]
        rows = {
            "dirty": (timed(["wsclean", "-quiet", "-size", *size, "-scale", f"{cell_arcsec:.6f}asec", "-name", str(out / "wsd"), str(ms)]),
                      timed([*ours, "--niter", "0", "--name", "ssd"])),
            "clean": (timed(["wsclean", "-quiet", "-size", *size, "-scale", f"{cell_arcsec:.6f}asec", *clean, "-name", str(out / "wsc"), str(ms)]),
                      timed([*ours, "--name", "ssc", "--save-residual"])),
        }
        print(f"MS: AA* 144 dishes, 24 x 4 samples, {args.sources} sources; image {args.npixel}^2, cell {cell_arcsec:.3f} arcsec, uniform")
        for kind, ((ws_s, ws_mb), (ss_s, ss_mb)) in rows.items():
            print(f"{kind:6s} WSClean {ws_s:7.1f} s {ws_mb:7.0f} MB | srcnet-sim {ss_s:7.1f} s {ss_mb:7.0f} MB | "
                  f"speed-up {ws_s / ss_s:4.1f}x, memory {ss_mb / ws_mb:4.2f}x")
        ws_dirty = np.squeeze(fits.getdata(out / "wsd-dirty.fits"))
        ss_dirty = np.squeeze(fits.getdata(out / "ssd-dirty.fits"))
        ws_res = np.squeeze(fits.getdata(out / "wsc-residual.fits"))
        ss_res = np.squeeze(fits.getdata(out / "ssc-residual.fits"))
        ss_clean = fits.getheader(out / "ssc-cleaned.fits")
        ws_clean = fits.getheader(out / "wsc-image.fits")
        print(f"dirty NCC {np.corrcoef(ws_dirty.ravel(), ss_dirty.ravel())[0, 1]:.5f}, peak ratio {ss_dirty.max() / ws_dirty.max():.4f}")
        print(f"beam srcnet-sim {ss_clean['BMAJ'] * 3600:.3f} x {ss_clean['BMIN'] * 3600:.3f} arcsec, "
              f"WSClean {ws_clean['BMAJ'] * 3600:.3f} x {ws_clean['BMIN'] * 3600:.3f} arcsec")
        print(f"residual rms srcnet-sim {ss_res.std():.3g} Jy/beam, WSClean {ws_res.std():.3g} Jy/beam")


if __name__ == "__main__":
    main()
