#!/bin/sh
# Install srcnet-sim from a source tree into a fresh virtual environment.
# The Dockerfile runs exactly this; CI runs it on a clean venv to test the image recipe without Docker.
#   install.sh SOURCE_DIR PREFIX
set -eu
src="$1"
prefix="$2"
python3 -m venv "$prefix"
"$prefix/bin/pip" install --no-cache-dir --disable-pip-version-check "$src[qa]"  # qa: PyBDSF, the QA lines of --clean runs
"$prefix/bin/srcnet-sim" --version
