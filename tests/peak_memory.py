"""A child process's own peak resident memory, not its parent's.

Linux keeps `ru_maxrss` across fork and exec: a child started by a process that once held 700 MiB reports at least
700 MiB (Python's subprocess starts it with vfork, so it inherits the parent's high-water mark). A small launcher
process in between starts the command with a fresh high-water mark and reports the command's own `ru_maxrss` (from
`wait4`) on its stdout's last line; the command's output goes to files. Used by the memory tests and the benchmarks.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    child = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


@dataclass(frozen=True)
class Measured:
    """A finished command: exit status, its peak resident memory (bytes) and its output (text)."""

    returncode: int
    peak_bytes: int
    stdout: str
    stderr: str


def run_measured(command: list[str], env: dict[str, str] | None = None, timeout_s: float = 900) -> Measured:
    """Run COMMAND (argv) in ENV and measure its own peak resident memory, whatever this process holds."""
    with tempfile.TemporaryDirectory(prefix="peak-memory-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(out), str(err), *command], env=env,
                                  capture_output=True, text=True, timeout=timeout_s, check=True)
        returncode, peak = map(int, launcher.stdout.split())
        return Measured(returncode, peak, out.read_text(errors="replace"), err.read_text(errors="replace"))
