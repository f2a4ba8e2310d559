#!/usr/bin/env bash
# Build .whl/site.tar.xz: srcnet-sim's Python 3.12 dependencies that a typical offline GPU node lacks,
# installed for CPython 3.12 manylinux x86_64 and pruned, for benchmarks/gpu_check.sh to unpack there.
#
#   bash benchmarks/gpu_wheelhouse.sh            (needs internet and pip; any Python >= 3.10 here)
#
# Not included (the GPU image has them, and two versions in one process break things): numpy, scipy,
# numba, numba-cuda, cupy, llvmlite, and the small pure-Python packages listed in GPU_IMAGE_HAS below.
# casacore/data/ephemerides/DE200 and DE405 (JPL planetary tables) are dropped: UVW and elevation
# conversions do not use them. Result: one tar.xz of about 40 MB (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.whl
PY=${PYTHON:-python3}
# Packages srcnet-sim, its benchmarks (bench_gpu, bench_scale with Dask) and tests import on the GPU node, with their Requires-Dist closure
# minus what the GPU image already has.
PACKAGES=(
  python-casacore ducc0
  astropy pyerfa astropy-iers-data
  pydantic pydantic-core annotated-types typing-inspection
  jsonschema jsonschema-specifications referencing rpds-py
  matvis pyuvdata docstring-parser line-profiler "setuptools-scm<8.2"
  dask distributed cloudpickle toolz partd locket fsspec msgpack tornado zict tblib jinja2 markupsafe urllib3
)
GPU_IMAGE_HAS="numpy scipy numba numba-cuda llvmlite cupy-cuda13x attrs typing-extensions packaging pyyaml tqdm psutil
rich click h5py six idna charset-normalizer sortedcontainers setuptools pytest matplotlib"

rm -rf "$OUT/wheels" "$OUT/site" "$OUT/site.tar.xz"
mkdir -p "$OUT/wheels" "$OUT/site"
PLATFORM=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORM[@]}" \
  --dest "$OUT/wheels" "${PACKAGES[@]}" 2>&1 | { grep -v "is ignored: it is neither" || true; }

# Every Requires-Dist (without extras or markers that exclude CPython 3.12 on Linux) must be in the
# wheelhouse or on the GPU image: fail here rather than on the offline node.
"$PY" - "$OUT/wheels" "$GPU_IMAGE_HAS" <<'EOF'
import re, sys, zipfile, pathlib
from email.parser import Parser
wheels, image = pathlib.Path(sys.argv[1]), set(sys.argv[2].split())
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {norm(w.name.split("-")[0]) for w in wheels.glob("*.whl")} | {norm(n) for n in image}
missing = set()
for wheel in wheels.glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for req in Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []:
            name, _, marker = req.partition(";")
            if "extra ==" in marker or "python_version < \"3.1" in marker or "sys_platform == \"win32\"" in marker \
                    or "platform_system == \"Windows\"" in marker:
                continue
            name = norm(re.split(r"[ <>=!~\[(;]", name.strip())[0])
            if name not in have:
                missing.add(f"{name} (for {wheel.name.split('-')[0]})")
if missing:
    sys.exit("missing from the wheelhouse and the GPU image: " + ", ".join(sorted(missing)))
print(f"{len(list(wheels.glob('*.whl')))} wheels; every Requires-Dist is there or on the GPU image")
EOF

"$PY" -m pip install --quiet --no-index --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORM[@]}" --target "$OUT/site" "$OUT"/wheels/*.whl
rm -rf "$OUT"/site/casacore/data/ephemerides/DE200 "$OUT"/site/casacore/data/ephemerides/DE405 "$OUT"/site/bin
find "$OUT/site" -name __pycache__ -type d -prune -exec rm -rf {} +
tar -C "$OUT/site" -cJf "$OUT/site.tar.xz" .
rm -rf "$OUT/wheels" "$OUT/site"
du -b "$OUT/site.tar.xz" | awk '{printf "%s: %.1f MiB\n", $2, $1 / 1048576}'
