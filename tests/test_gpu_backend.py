"""GPU backend without a GPU (CI): the GPU predictor's own code - the array code with NumPy in place of
CuPy and the CUDA kernel in numba's CUDA simulator - against the CPU predictor; BACKEND selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srcnet_sim.errors import UserInputError
from srcnet_sim.simulate.backend import gpu_device_name, resolve_backend

TESTS = Path(__file__).parent
SIMULATED = r"""
import json, sys
import numpy as np
from numba import cuda
assert cuda.simulator_enabled if hasattr(cuda, "simulator_enabled") else True
from gpu_workload import CASES, cpu_predict, gpu_predict, make_workload, relative_error
from srcnet_sim.simulate.predict_gpu import GpuPredictor

results = []
# 5 dishes (odd: the middle row of the row pairing), autocorrelations, 5 channels (a group of 4 and 1),
# points then Gaussians.
w = make_workload(n_dish=5, n_src=11, n_gauss=4, n_chan=5, n_time=2)
for dtype in (np.complex64, np.complex128):
    for bandwidth, time_smearing in CASES:
        cpu = cpu_predict(w, bandwidth, time_smearing, dtype)
        gpu = gpu_predict(GpuPredictor(np), w, bandwidth, time_smearing, dtype)
        plain = cpu_predict(w, False, False, dtype)
        results.append({"case": [dtype.__name__, bandwidth, time_smearing], "error": relative_error(gpu, cpu),
                        "smearing_effect": relative_error(plain, cpu), "dtype": str(gpu.dtype),
                        "shape": list(gpu.shape), "want_shape": list(cpu.shape)})
# Memory budget of 1 byte: one channel and 4 sources per chunk (chunks across the point/Gaussian boundary).
tiny = GpuPredictor(np, memory_bytes=1, min_source_chunk=4)
for bandwidth in (False, True):
    cpu = cpu_predict(w, bandwidth, True, np.complex128)
    gpu = gpu_predict(tiny, w, bandwidth, True, np.complex128)
    results.append({"case": ["chunked", bandwidth, True], "error": relative_error(gpu, cpu), "smearing_effect": 1.0,
                    "dtype": str(gpu.dtype), "shape": list(gpu.shape), "want_shape": list(cpu.shape)})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def simulated_results() -> list[dict]:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", SIMULATED], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gpu_predictor_in_the_cuda_simulator_matches_the_cpu_predictor(simulated_results):
    tolerance = {"complex64": 1e-5, "complex128": 1e-10, "chunked": 1e-10}
    assert len(simulated_results) == 10
    for r in simulated_results:
        name, bandwidth, time_smearing = r["case"]
        assert r["shape"] == r["want_shape"]
        assert r["dtype"] == ("complex128" if name == "chunked" else name)
        assert r["error"] <= tolerance[name], r
        if bandwidth or time_smearing:  # the smearing is large enough that a wrong kernel would show
            assert r["smearing_effect"] > 1e-3, r


def test_auto_falls_back_to_the_cpu_without_a_device():
    if gpu_device_name() is not None:
        pytest.skip("a CUDA device is present: the fallback cannot be seen here")
    backend = resolve_backend("auto")
    assert backend.name == "cpu" and "CPU" in backend.device
    assert resolve_backend("cpu").name == "cpu"


def test_gpu_without_a_device_is_a_one_line_error_naming_backend():
    if gpu_device_name() is not None:
        pytest.skip("a CUDA device is present")
    with pytest.raises(UserInputError) as err:
        resolve_backend("gpu")
    assert str(err.value).startswith("BACKEND: ") and "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="BACKEND"):
        resolve_backend("tpu")
