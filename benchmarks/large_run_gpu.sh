#!/usr/bin/env bash
# The seed's large run on a GPU node: 4 h of 10 s dumps (1,440) x 1,024 channels, the default 10,000-source sky,
# BACKEND=gpu, through benchmarks/rehearsal.py, which prints estimate's prediction beside the run and the phases
# (set-up, simulate + write, staging) with their rates. About 0.5 TiB of MS: the MS and its staged tar need twice
# that on one ext4 volume (once on XFS with reflink or btrfs). Where TMPDIR's volume holds less, the run is cut
# to the dumps that fit (the shape stays: 1,024 channels, 10 s dumps), said so in the log.
# Dependencies come from .whl/site.tar.xz (benchmarks/gpu_wheelhouse.sh); the log goes to $OUT/large_run_gpu.log.
#
#   bash benchmarks/large_run_gpu.sh [DUMPS]        (default 1440, or what fits)
#   WORK=/big/volume bash benchmarks/large_run_gpu.sh
#   BACKEND=cpu bash benchmarks/large_run_gpu.sh 2      (a dry run of the script on a machine without a GPU)
#
# Time: on an H100/H200 the visibilities of all 1,440 dumps are minutes of GPU work (docs/gpu.md: ~7.5e11
# terms/s), so writing and staging the 0.5 TiB decide the wall time: give it hours, not a 10-minute command.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
WORK=${WORK:-${TMPDIR:-/tmp}}
BACKEND=${BACKEND:-gpu}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/large_run_gpu.log") 2>&1
source benchmarks/node_site.sh
use_node_site "$PWD" || { echo "FAILED: unpacking the wheelhouse"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"
lscpu | grep -E "Model name|^CPU\(s\)" || true
df -h "$WORK" | tail -1

# One dump of 1,024 channels: 10296 baselines x 1024 channels x 4 correlations x 8 bytes + flags and row columns.
DUMP_BYTES=$((10296 * (1024 * 4 * 8 + 1024 * 4 / 8 + 72)))
FREE=$(df --output=avail -B1 "$WORK" | tail -1)
COPIES=2
$PY -c "import sys; from srcnet_sim.fs.filecopy import shares_blocks; sys.exit(0 if shares_blocks('$WORK') else 1)" \
  && COPIES=1
FITS=$(( (FREE - 4 * 2**30) / (COPIES * DUMP_BYTES) ))
DUMPS=${1:-1440}
if [ "$FITS" -lt "$DUMPS" ]; then
  echo "$WORK holds $((FREE / 2**30)) GiB: $DUMPS dumps need $((COPIES * DUMPS * DUMP_BYTES / 2**30)) GiB" \
       "(MS + staged tar: $COPIES cop$([ $COPIES = 1 ] && echo y || echo ies)); running $FITS dumps instead"
  DUMPS=$FITS
fi
[ "$DUMPS" -ge 1 ] || { echo "FAILED: $WORK cannot hold one dump"; exit 1; }
echo "=== $(date -u +%H:%M:%S) rehearsal.py --dumps $DUMPS, BACKEND=$BACKEND"
cd benchmarks && $PY rehearsal.py --dumps "$DUMPS" --work "$WORK" --env "BACKEND=$BACKEND" | tee "$OUT/rehearsal_gpu.txt"
status=${PIPESTATUS[0]}
echo "=== $(date -u +%H:%M:%S) done (exit $status)"
exit "$status"
