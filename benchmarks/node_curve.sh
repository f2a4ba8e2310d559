#!/usr/bin/env bash
# The scaling curve on a bigger (offline) node: the whole `run --vis` and its simulate phase over 1, 2, 4, ... all
# cores, with threads (EXECUTOR=local) and with Dask worker processes, beside matvis, via benchmarks/bench_scale.py.
# Dependencies come from .whl/site.tar.xz (benchmarks/gpu_wheelhouse.sh); the log goes to $OUT/node_curve.log.
#
#   bash benchmarks/node_curve.sh [bench_scale.py options]     (default: --curve <cores> --times 96)
#
# On the H200 node's 16 cores `--curve 16 --times 240 --repeat 1` took 6.3 min before matvis (whose 240 steps took
# another 1.5 min) after 14 s of compiling: give it a 10-minute command. It first prints the CPU's SMT siblings (as
# a VM sees them) and the smearing kernel alone over 1, 2, 4, ... threads (benchmarks/bench_kernel.py, ~30 s).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/node_curve.log") 2>&1
source benchmarks/node_site.sh
use_node_site "$PWD" || { echo "FAILED: unpacking the wheelhouse"; exit 1; }
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|L3" || true
echo "SMT siblings of cpu0: $(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null || echo unknown)"
CORES=$(nproc)
if [ $# -eq 0 ]; then set -- --curve "$CORES" --times 96; fi
"$PY" benchmarks/bench_kernel.py
"$PY" benchmarks/bench_scale.py "$@"
