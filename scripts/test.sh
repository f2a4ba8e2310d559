#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run them.
#   - WSClean (Debian package `wsclean`), the independent imager the tests check our MS with;
#   - the package with its test extras (pytest, pyuvdata, matvis) from PyPI.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v wsclean >/dev/null 2>&1; then
    sudo_if_needed apt-get update -q
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -q --no-install-recommends wsclean
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
exec python3 -m pytest "$@"
