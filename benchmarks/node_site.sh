# Sourced by the scripts that run on an offline GPU node (gpu_check.sh, node_curve.sh): unpacks srcnet-sim's
# missing dependencies from .whl/site.tar.xz (made elsewhere by benchmarks/gpu_wheelhouse.sh) into $GPU_SITE and
# puts them, the package's sources and its tests on PYTHONPATH. Returns non-zero when unpacking failed.
GPU_SITE=${GPU_SITE:-/tmp/srcnet-site}
use_node_site() {
  local root=$1 status=0
  export PYTHONPATH="$root/src:$root/tests${PYTHONPATH:+:$PYTHONPATH}"
  if [ -f "$root/.whl/site.tar.xz" ]; then
    rm -rf "$GPU_SITE" && mkdir -p "$GPU_SITE" && tar -xJf "$root/.whl/site.tar.xz" -C "$GPU_SITE" || status=1
    export PYTHONPATH="$PYTHONPATH:$GPU_SITE" PATH="$GPU_SITE/bin:$PATH"
  else
    echo "no .whl/site.tar.xz: using what ${PY:-python3} already has"
  fi
  return $status
}
