#!/usr/bin/env bash
# The scaling curve on a bigger (offline) node: the whole `run --vis` and its simulate phase over 1, 2, 4, ... all
# cores, with threads (EXECUTOR=local) and with Dask worker processes, beside matvis, via benchmarks/bench_scale.py.
# Dependencies come from .whl/site.tar.xz (benchmarks/gpu_wheelhouse.sh); the log goes to $OUT/node_curve.log.
#
#   bash benchmarks/node_curve.sh [bench_scale.py options]     (default: --curve <cores> --times 96)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/node_curve.log") 2>&1
source benchmarks/node_site.sh
use_node_site "$PWD" || { echo "FAILED: unpacking the wheelhouse"; exit 1; }
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core" || true
CORES=$(nproc)
if [ $# -eq 0 ]; then set -- --curve "$CORES" --times 96; fi
"$PY" benchmarks/bench_scale.py "$@"
