"""Driver of the full-volume cases of test_hostile_staging, run inside its own mount namespace
(`unshare -m`, or `unshare -Urm` without root): mounts small tmpfs volumes for TMPDIR and OUT_DIR,
starts `srcnet-sim run`, fills one volume at a chosen moment, and prints what was left as JSON
(the volumes vanish with the namespace).

usage: python hostile_enospc.py ROOT VOLUME ARGS_JSON ENV_JSON
  VOLUME: "TMPDIR" (filled once the MS is being written) or "OUT_DIR" (filled once the MS is written,
  before staging).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEEP_FREE_BYTES = 4 * 2**20
SIZES = {"TMPDIR": "64m", "OUT_DIR": "48m"}


def fill(volume: Path) -> None:
    """Leave KEEP_FREE_BYTES free on the filesystem of `volume`."""
    stats = os.statvfs(volume)
    free = stats.f_bavail * stats.f_frsize
    with open(volume / "filler", "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(1, free - KEEP_FREE_BYTES))


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "filler")


def main() -> None:
    root, volume, args, env = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    mounts = {name: root / name.lower() for name in SIZES}
    for name, path in mounts.items():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZES[name]}", "tmpfs", str(path)], check=True)
    log = root / "run.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "srcnet_sim.cli", *args], stderr=stderr, stdout=subprocess.DEVNULL,
                                env={**env, "TMPDIR": str(mounts["TMPDIR"]), "OUT_DIR": str(mounts["OUT_DIR"])})
        filled = False
        while proc.poll() is None and not filled:
            if volume == "TMPDIR":
                ready = any(mounts["TMPDIR"].glob("srcnet-resume-*/*.ms"))
            else:
                ready = "INFO wrote " in log.read_text()
            if ready:
                fill(mounts[volume])
                filled = True
            time.sleep(0.002)
        proc.wait()
    print(json.dumps({"returncode": proc.returncode, "filled": filled, "stderr": log.read_text(),
                      "left": {name: listing(path) for name, path in mounts.items()}}))


if __name__ == "__main__":
    main()
