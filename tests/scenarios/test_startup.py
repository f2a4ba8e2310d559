"""Start-up: `srcnet-sim run --vis` and `--help` import only what they use.

Every module imported is start-up time of every run (about 0.3 s for scipy.signal alone). The imaging,
the QA, Dask, the GPU backend, Kubernetes and Rucio are imported by the commands and products that
need them, never by the default run. These are module-set checks, not timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs the command line as `python -m srcnet_sim.cli ARGS` does, then prints the modules the process holds.
MODULES_AFTER = r"""
import json, runpy, sys
sys.argv = ["srcnet_sim.cli", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("srcnet_sim.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("RESULT " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Imported by the default run only if something is wrong: each is the business of another command or product.
NOT_FOR_THE_DEFAULT_RUN = (
    "scipy.signal", "scipy.optimize", "scipy.stats", "scipy.spatial", "scipy.ndimage", "scipy.interpolate",
    "matplotlib", "ducc0", "astropy", "dask", "distributed", "bdsf", "casatools",
    "casatasks", "cupy", "numba.cuda", "tqdm", "rucio", "ska_src_mm_notification",
    "srcnet_sim.imaging.clean", "srcnet_sim.imaging.multiscale", "srcnet_sim.imaging.gridding",
    "srcnet_sim.imaging.imager", "srcnet_sim.imaging.msdata", "srcnet_sim.imaging.pipeline",
    "srcnet_sim.imaging.products", "srcnet_sim.imaging.fits", "srcnet_sim.imaging.preview",
    "srcnet_sim.qa.report", "srcnet_sim.qa.matching", "srcnet_sim.qa.plots", "srcnet_sim.products.truth",
    "srcnet_sim.products.notification", "srcnet_sim.ingest.rucio_ingest", "srcnet_sim.deploy.k8s", "srcnet_sim.run.calibrate",
    "srcnet_sim.run.dask_plugin", "srcnet_sim.simulate.predict_gpu", "srcnet_sim.simulate.gpu_kernel",
    "srcnet_sim.sky.download",
)
# What parsing the command line may import: the settings (pydantic, numpy).
NOT_FOR_HELP = ("numba", "scipy", "casacore", "erfa", "jsonschema", "psutil",
                "srcnet_sim.run.plan", "srcnet_sim.simulate", "srcnet_sim.vis", "srcnet_sim.products")


def modules_after(args: list[str], env: dict[str, str]) -> set[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    result = subprocess.run([sys.executable, "-c", MODULES_AFTER, *args], env={**base, "PYTHONPATH": str(SRC), **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert report["code"] in (0, None), result.stderr
    return set(report["modules"])


def imported(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of `modules` that are one of `packages` or inside one."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_the_default_run_imports_only_what_it_uses(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    env = {"OUT_DIR": str(out), "TELESCOPE": "SKA-MID-AA0.5", "SYNTHETIC_SOURCES": "10", "NUM_TIME_STAMPS": "2"}
    modules = modules_after(["run", "--vis"], env)
    assert (out / "testing" / "measurements.ms.tar.meta").is_file()  # the whole run happened, staging included
    assert {"numba", "casacore.tables", "srcnet_sim.simulate.predict", "srcnet_sim.products.staging"} <= modules
    assert imported(modules, NOT_FOR_THE_DEFAULT_RUN) == []
    # Only the option lists of `srcnet-sim image` (its parser is built with the others), which import numpy alone,
    # and the plan's check of the cube planes' channels (imaging.channels, plain Python).
    assert imported(modules, ("srcnet_sim.imaging",)) == ["srcnet_sim.imaging", "srcnet_sim.imaging.beam",
                                                          "srcnet_sim.imaging.channels", "srcnet_sim.imaging.weighting"]


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["--version"]])
def test_help_imports_no_numerics(args: list[str]):
    modules = modules_after(args, {})
    assert "srcnet_sim.config" in modules
    assert imported(modules, NOT_FOR_HELP + NOT_FOR_THE_DEFAULT_RUN) == []
