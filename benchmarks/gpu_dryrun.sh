#!/usr/bin/env bash
# Dry run of benchmarks/gpu_check.sh on a machine without a GPU, under CPython 3.12 as on the GPU node:
# a venv with the GPU image's numpy/scipy/numba/numba-cuda, the wheelhouse .whl/site.tar.xz unpacked by the
# check script itself, CuPy replaced by benchmarks/gpu_dryrun/cupy (NumPy) and the kernel run by numba's
# CUDA simulator; the large device tests and matvis's GPU path are left out (they need a GPU).
#   bash benchmarks/gpu_dryrun.sh        (needs python3.12 or PY312=/path/to/python3.12, and pip access once)
# Expect "done: status 1" only from matvis_gpu_s (matvis needs the real CuPy); every other step must pass.
set -uo pipefail
cd "$(dirname "$0")/.."
PY312=${PY312:-$(command -v python3.12 || echo "$HOME/.pyenv/versions/3.12.1/bin/python3")}
VENV=${GPU_DRYRUN_VENV:-/tmp/gpu312}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV" && "$VENV/bin/pip" install -q "numpy>=2.3" scipy numba numba-cuda pytest pyyaml tqdm psutil \
    matplotlib attrs typing-extensions packaging rich click h5py six idna charset-normalizer sortedcontainers setuptools
fi
[ -f .whl/site.tar.xz ] || bash benchmarks/gpu_wheelhouse.sh
OUT=${OUT:-$(mktemp -d)} PYTHON="$VENV/bin/python" PYTHONPATH="$PWD/benchmarks/gpu_dryrun" NUMBA_ENABLE_CUDASIM=1 \
  GPU_SITE=/tmp/srcnet-site-dryrun GPU_CHECK_BENCH_ARGS=--quick \
  GPU_CHECK_TESTS="tests/unit/simulate/test_gpu_device.py tests/unit/simulate/test_predict.py tests/unit/run/test_overlap.py
    --deselect=tests/unit/simulate/test_gpu_device.py::test_gpu_matches_cpu --deselect=tests/unit/simulate/test_gpu_device.py::test_gpu_many_dishes
    --deselect=tests/unit/simulate/test_gpu_device.py::test_gpu_chunked_matches_cpu --deselect=tests/unit/simulate/test_predict.py::test_agrees_with_matvis" \
  bash benchmarks/gpu_check.sh
