#!/bin/sh
# Install srcnet-sim from a source tree into a fresh virtual environment.
# The Dockerfile runs exactly this; CI runs it on a clean venv to test the image recipe without Docker.
#   install.sh SOURCE_DIR PREFIX [EXTRAS]     (EXTRAS e.g. gpu: deploy/docker/Dockerfile.gpu)
set -eu
src="$1"
prefix="$2"
extras="${3:-}"
python3 -m venv "$prefix"
# qa (PyBDSF: the QA lines of --clean runs) and msv4 (zarr, xarray: VIS_FORMAT=msv4) always; more extras (gpu) from the third argument
"$prefix/bin/pip" install --no-cache-dir --disable-pip-version-check "$src[qa,msv4${extras:+,$extras}]"
"$prefix/bin/srcnet-sim" --version
