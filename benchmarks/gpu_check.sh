#!/usr/bin/env bash
# The GPU node check, in one script (a few minutes on an H100/H200; the node needs no internet):
#   1. unpacks srcnet-sim's missing dependencies from .whl/site.tar.xz (made elsewhere by
#      benchmarks/gpu_wheelhouse.sh) into $GPU_SITE and puts them on PYTHONPATH;
#   2. prints nvidia-smi, the versions, and compiles a trivial numba.cuda kernel;
#   3. runs the GPU tests on the device (GPU predictor vs CPU predictor, single and double precision,
#      Gaussians, polarisation, both smearings) - and fails if they were skipped;
#   4. runs `srcnet-sim run --vis` with BACKEND=gpu and BACKEND=cpu on a small observation and compares
#      the MeasurementSets;
#   5. runs benchmarks/bench_gpu.py (matvis GPU vs srcnet-sim GPU vs srcnet-sim CPU, kernel terms/s).
# Logs and results go to $OUT (gpu_check.log, pytest.xml, bench_gpu.json). Exit status: 0 when every step passed.
#
#   bash benchmarks/gpu_check.sh
# Without a GPU, benchmarks/gpu_dryrun.sh runs this script with NumPy and numba's CUDA simulator.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
source benchmarks/node_site.sh
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
STATUS=0
START=$(date +%s)
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { echo "FAILED: $*"; STATUS=1; }

step "1. dependencies from .whl/site.tar.xz into $GPU_SITE"
use_node_site "$ROOT" || fail "unpacking the wheelhouse"

step "2. device and versions"
nvidia-smi || echo "(no nvidia-smi)"
$PY - <<'EOF' || fail "versions"
import importlib.metadata as md, platform
print("python", platform.python_version())
for name in ("numpy", "scipy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "llvmlite", "python-casacore",
             "astropy", "pydantic", "matvis", "pyuvdata", "ducc0"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
import srcnet_sim, cupy
print("srcnet_sim from", srcnet_sim.__file__)
from srcnet_sim.simulate.predictors import resolve_backend
print("BACKEND=auto ->", resolve_backend("auto"))
EOF
numba_cuda_smoke() {
  $PY -c "
import numpy as np
import srcnet_sim.simulate.gpu_kernel  # first: its NumPy 2.5 shim (np.row_stack) lets numba-cuda 0.30 compile
from numba import cuda
@cuda.jit
def add_one(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] += 1
a = cuda.to_device(np.zeros(64))
add_one[2, 32](a)
assert a.copy_to_host().sum() == 64
print('numba.cuda compiles and runs on', getattr(cuda.get_current_device(), 'name', 'the CUDA simulator'))"
}
if ! numba_cuda_smoke; then
  for home in /usr/local/cuda /usr/local/cuda-13.0 /usr/local/cuda-12; do
    [ -d "$home/nvvm" ] || continue
    echo "retrying with CUDA_HOME=$home"; export CUDA_HOME=$home
    numba_cuda_smoke && break
    unset CUDA_HOME
  done
  [ -n "${CUDA_HOME:-}" ] || fail "numba.cuda cannot compile kernels here"
fi

step "3. GPU tests on the device (and the CPU predictor tests under this Python)"
# GPU_CHECK_TESTS: other pytest arguments (to try this script without a GPU, on smaller tests).
timeout 200 $PY -m pytest -p no:cacheprovider -v -rs --junitxml="$OUT/pytest.xml" -s \
  ${GPU_CHECK_TESTS:-tests/unit/simulate/test_gpu_device.py tests/unit/simulate/test_predict.py tests/unit/run/test_overlap.py} || fail "pytest"
$PY - "$OUT/pytest.xml" <<'EOF' || fail "GPU tests were skipped or missing on a GPU node"
import sys, xml.etree.ElementTree as ET
cases = [c for c in ET.parse(sys.argv[1]).iter("testcase") if "test_gpu_device" in c.get("classname", "")]
skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
print(f"{len(cases)} device tests, {len(skipped)} skipped")
sys.exit(1 if not cases or skipped else 0)
EOF

step "4. srcnet-sim run --vis, BACKEND=gpu and BACKEND=cpu, AA1, 200 sources, 6 dumps, double precision"
RUNS=$(mktemp -d)
for backend in gpu cpu; do
  mkdir -p "$RUNS/$backend"
  OUT_DIR="$RUNS/$backend" BACKEND=$backend TELESCOPE=SKA-MID-AA1 SYNTHETIC_SOURCES=200 NUM_TIME_STAMPS=6 \
    SMEARING=bandwidth+time PRECISION=double OBS_ID=gpucheck timeout 90 $PY -m srcnet_sim.cli run --vis \
    || fail "run --vis BACKEND=$backend"
done
$PY - "$RUNS" <<'EOF' || fail "GPU and CPU MeasurementSets differ"
import glob, sys
import numpy as np
from casacore.tables import table
import tarfile
data = {}
for b in ("gpu", "cpu"):
    (archive,) = glob.glob(f"{sys.argv[1]}/{b}/**/*.ms.tar", recursive=True)  # staged MS
    with tarfile.open(archive) as tar:
        tar.extractall(f"{sys.argv[1]}/{b}/unpacked", filter="data")
    (ms,) = glob.glob(f"{sys.argv[1]}/{b}/unpacked/*.ms")
    with table(ms, ack=False) as t:
        data[b] = t.getcol("DATA")
error = np.linalg.norm(data["gpu"] - data["cpu"]) / np.linalg.norm(data["cpu"])
print(f"MS DATA, GPU vs CPU: {data['gpu'].shape}, relative error {error:.2e}")
# The MS stores complex64 whatever PRECISION: double-precision predictions agree to its rounding.
sys.exit(0 if data["gpu"].shape == data["cpu"].shape and error <= 1e-6 else 1)
EOF
rm -rf "$RUNS"

step "5. benchmarks/bench_gpu.py"
# Whatever is left of 6 minutes from the start, at least 60 s. GPU_CHECK_BENCH_ARGS: e.g. --quick.
LEFT=$(( START + 360 - $(date +%s) )); [ $LEFT -ge 60 ] || LEFT=60
echo "time left for the benchmark: $LEFT s"
timeout $LEFT $PY benchmarks/bench_gpu.py ${GPU_CHECK_BENCH_ARGS:-} || fail "bench_gpu.py"

step "done: status $STATUS"
sleep 1  # let tee finish writing the log
exit $STATUS
