"""Helpers of the block, Dask and resume tests: small runs as real processes, and MS columns compared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from casacore.tables import table

from conftest import SRC, unpack_ms

# A small run with everything that must not depend on blocks or workers: noise, gains, MODEL_DATA, Gaussians (SYNTHETIC has
# some), 16 channels, 12 time steps; with MEMORY_LIMIT small enough for several blocks in time and channel.
SMALL = {"TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": "12", "SYNTHETIC_SOURCES": "300", "NOISE": "on", "GAINS": "on", "MODEL_DATA": "on",
         "FREQ_INC_HZ": "4437500", "OBS_ID": "blocks-test", "FILE_PREFIX": "b_", "RUCIO_NAMESPACE": "blocks"}
COLUMNS = ("DATA", "MODEL_DATA", "UVW", "TIME", "FLAG", "WEIGHT", "SIGMA", "ANTENNA1", "ANTENNA2")
TAR = "b_measurements.ms.tar"


def environment(out: Path, tmp: Path, **settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "OPENBLAS_CORETYPE")}
    return {**base, "PYTHONPATH": str(SRC), "OUT_DIR": str(out), "TMPDIR": str(tmp), **SMALL, **settings}


def run(args: list[str], env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srcnet_sim.cli", "run", *args], env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def fresh_dirs(root: Path, name: str) -> tuple[Path, Path]:
    out, tmp = root / name / "out", root / name / "tmp"
    out.mkdir(parents=True)
    tmp.mkdir()
    return out, tmp


def staged_columns(out: Path, into: Path) -> dict[str, np.ndarray]:
    """The main-table columns of the MS staged in out/blocks, with the row count."""
    ms = unpack_ms(out / "blocks" / TAR, into)
    with table(str(ms), ack=False) as main:
        return {name: main.getcol(name) for name in COLUMNS}


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Bit for bit: same shapes, same bytes (NaN-safe)."""
    for name in COLUMNS:
        assert a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs"
