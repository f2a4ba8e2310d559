"""What this machine and its volumes offer now: free disk bytes, available memory (container limits included)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a number near 2^63


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" or not text.isdigit() or int(text) >= UNLIMITED else int(text)


def _cgroup_dirs(root: Path, proc_cgroup: str, controller: str | None) -> list[Path]:
    """The cgroup directories of this process for `controller` (None: the v2 unified hierarchy), innermost first,
    up to the mount point (inside a container the mount point is often the process's own cgroup)."""
    for line in proc_cgroup.splitlines():
        _, controllers, relative = line.split(":", 2)
        if (controller is None and controllers == "") or (controller is not None and controller in controllers.split(",")):
            mount = root if controller is None else root / controller
            dirs, current = [], mount / relative.lstrip("/")
            while True:
                if current.is_dir():
                    dirs.append(current)
                if current == mount or mount not in current.parents:
                    break
                current = current.parent
            return dirs
    return []


def cgroup_available_bytes(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> int | None:
    """Memory this process's cgroups (v2 memory.max, v1 memory.limit_in_bytes) still allow, or None without a limit.

    Usage counts what the kernel cannot simply drop: the inactive file cache is treated as free.
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    available = None
    for controller, limit_file, usage_file, cache_key in ((None, "memory.max", "memory.current", "inactive_file"),
                                                          ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                                                           "total_inactive_file")):
        for directory in _cgroup_dirs(root, proc_cgroup, controller):
            limit = _read_int(directory / limit_file)
            if limit is None:
                continue
            usage = _read_int(directory / usage_file) or 0
            try:
                stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
                usage -= min(usage, int(stat.get(cache_key, 0)))
            except (OSError, ValueError):
                pass
            left = max(limit - usage, 0)
            available = left if available is None else min(available, left)
    return available


def available_memory_bytes() -> int:
    """Memory a run may use now: the machine's available memory, or less where a cgroup (container) limit says so."""
    machine = int(psutil.virtual_memory().available)
    cgroup = cgroup_available_bytes()
    return machine if cgroup is None else min(machine, cgroup)


MEMORY_HEADROOM = 0.8  # share of the available memory a worker's blocks are sized to by default


def default_memory_limit(workers_here: int = 1) -> int:
    """MEMORY_LIMIT's default: MEMORY_HEADROOM of the memory available now (container limit included), shared by
    the workers that run on this machine."""
    return int(MEMORY_HEADROOM * available_memory_bytes() / max(1, workers_here))
