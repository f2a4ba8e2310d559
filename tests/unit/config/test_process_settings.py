"""As a library, srcnet_sim changes nothing process-wide; the command line sets its thread settings, explicitly,
before numpy (OpenBLAS) and numba are loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SRC = REPO / "src"
CLI_SETTINGS = {"OPENBLAS_THREAD_TIMEOUT": "4", "NUMBA_THREADING_LAYER": "workqueue", "RUCIO_CLIENT_MODE": "1"}

# Dependencies first: python-casacore itself sets AIPSPATH and CASACORE_DATADIR when imported; only srcnet_sim's
# own modules are judged here.
IMPORT_EVERYTHING = r"""
import json, os, pkgutil, sys
import matplotlib, numba, numpy, scipy, astropy, casacore.tables, ducc0, pydantic, psutil, jsonschema, yaml
before = {"env": dict(os.environ), "layer": numba.config.THREADING_LAYER,
          "backend": repr(dict.__getitem__(matplotlib.rcParams, "backend"))}
import srcnet_sim
names = sorted(m.name for m in pkgutil.walk_packages(srcnet_sim.__path__, "srcnet_sim."))
for name in names:
    __import__(name)
after = {"env": dict(os.environ), "layer": numba.config.THREADING_LAYER,
         "backend": repr(dict.__getitem__(matplotlib.rcParams, "backend"))}
print(json.dumps({"before": before, "after": after, "modules": names, "pyplot": "matplotlib.pyplot" in sys.modules}))
"""

# Records the environment at the moment numpy is first imported, then runs an entry point as `python -m` does.
ENTRY_POINT = r"""
import json, os, runpy, sys
seen = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and "numpy" not in seen:
            seen["numpy"] = {k: os.environ.get(k) for k in %(names)r}
        return None
sys.meta_path.insert(0, Watch())
module, args = sys.argv[1], sys.argv[2:]
sys.argv = [module, *args]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
import numba
@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    return s
import numpy as np
total(np.ones(1000))
print("RESULT " + json.dumps({"code": code, "at_numpy_import": seen.get("numpy"), "layer": numba.threading_layer(),
                              "env": {k: os.environ.get(k) for k in %(names)r}}))
""" % {"names": sorted(CLI_SETTINGS)}


def clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**base, "PYTHONPATH": str(SRC), **extra}


def run_python(code: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def test_importing_the_library_changes_nothing_process_wide():
    result = run_python(IMPORT_EVERYTHING, env=clean_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert {"srcnet_sim.cli", "srcnet_sim.simulate.predict", "srcnet_sim.imaging.preview",
            "srcnet_sim.ingest.rucio_ingest", "srcnet_sim.workflows.aastar"} <= set(report["modules"])
    before, after = report["before"], report["after"]
    changed = {k for k in before["env"].keys() | after["env"].keys() if before["env"].get(k) != after["env"].get(k)}
    assert changed == set(), f"importing srcnet_sim changed the environment: {sorted(changed)}"
    assert after["layer"] == before["layer"], "importing srcnet_sim changed numba's threading layer"
    assert after["backend"] == before["backend"] and not report["pyplot"], "importing srcnet_sim chose a matplotlib backend"


@pytest.mark.parametrize("module, args", [
    ("srcnet_sim.cli", ["estimate", "--telescope", "SKA-MID-AA0.5", "--synthetic-sources", "10"]),  # = `srcnet-sim`
    ("srcnet_sim.workflows.aastar", ["--help"]),  # the seed's entry point
])
def test_the_command_line_sets_the_thread_settings_before_numpy_loads(module: str, args: list[str]):
    result = run_python(ENTRY_POINT, module, *args, env=clean_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert report["code"] in (0, None)
    # OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when numpy loads it: it must already be set then.
    assert report["at_numpy_import"] == CLI_SETTINGS
    assert report["env"] == CLI_SETTINGS
    assert report["layer"] == "workqueue"  # what numba actually used for a parallel loop


def test_a_users_own_thread_settings_win():
    mine = {"OPENBLAS_THREAD_TIMEOUT": "1", "NUMBA_THREADING_LAYER": "omp", "RUCIO_CLIENT_MODE": "1"}
    result = run_python(ENTRY_POINT, "srcnet_sim.workflows.aastar", "--help", env=clean_env(**mine))
    assert result.returncode == 0, result.stderr
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert report["at_numpy_import"] == mine and report["env"] == mine
    assert report["layer"] == "omp"


def test_the_console_script_is_the_entry_point_tested_here():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"srcnet-sim": "srcnet_sim.cli:main"}
