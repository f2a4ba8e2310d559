"""Shared fixtures: offline astropy, small simulated MeasurementSets, CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.utils.data import conf as astropy_data_conf

# Tests run without network, as users in a cluster may: never let astropy try to download.
astropy_data_conf.allow_internet = False

SRC = Path(__file__).resolve().parents[1] / "src"


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m srcnet_sim.cli ARGS` in a clean environment (only the given settings)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", "OPENBLAS_CORETYPE")}
    return subprocess.run([sys.executable, "-m", "srcnet_sim.cli", *args], env={**base, **(env or {})},
                          cwd=cwd, capture_output=True, text=True, timeout=900)


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """Terminate the processes (last started first) and wait for each, killing one that does not end in 30 s."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def sin_pixel_position(dx_pix: int, dy_pix: int, cell_rad: float, ra0_deg: float = 150.12,
                       dec0_deg: float = 2.21) -> tuple[float, float]:
    """RA, Dec (deg) of the pixel (dx, dy) from the centre of a SIN image of cell `cell_rad` centred on (RA0, DEC0),
    the default phase centre: a source there lies on a pixel centre of our and WSClean's images."""
    l, m = -dx_pix * cell_rad, dy_pix * cell_rad
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    n = np.sqrt(1 - l**2 - m**2)
    dec = np.arcsin(m * np.cos(dec0) + n * np.sin(dec0))
    ra = ra0 + np.arctan2(l, n * np.cos(dec0) - m * np.sin(dec0))
    return float(np.degrees(ra)), float(np.degrees(dec))


def write_csv_sky(path: Path, rows: list[tuple[float, ...]], header: str = "ra_deg,dec_deg,i_jy") -> Path:
    """Write a CSV sky model with the given header and rows."""
    path.write_text(header + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n")
    return path


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def unpack_ms(staged_tar: Path, into: Path) -> Path:
    """Unpack a staged `<name>.ms.tar` into `into` and return the MeasurementSet directory."""
    with tarfile.open(staged_tar) as archive:
        top = archive.getnames()[0].split("/")[0]
        archive.extractall(into, filter="data")
    return into / top
