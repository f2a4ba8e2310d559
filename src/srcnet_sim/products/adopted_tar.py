"""The tar of a MeasurementSet made around its largest file instead of from a copy of it: staging without a second
write of the visibilities on ext4 and XFS.

The MS's DATA column is one file holding most of its bytes (vis.writer: one TiledColumnStMan). In the tar laid out
by products.aligned_tar that file comes right after the top directory, its data on a 4 KiB boundary K. So the file
itself becomes the tar: it is renamed out of the MS into the work directory, K bytes are inserted at its start
(fs.extents.insert_range: only its extent map changes), and the headers and the MS's other files are written around
it. The bytes are those of products.aligned_tar.write_tar's copy, by construction (one layout, two writers).

A kill at any moment loses nothing: before the file leaves the MS, a marker (MARKER, in the work directory: the
run's resumable state, run.resume) records where it came from, its size and K; restore() undoes a half-made tar
(the tail cut off, the K bytes collapsed, the file renamed back), so the next run resumes a whole MS. Only once the
tar is complete does the caller move it into the staging area's private directory (staging.prepare_adopted); from
then on the MS is spent, the marker says so, and restore() reports it (the next run starts the MS over, unless the
product was published meanwhile, when it has nothing to do).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from srcnet_sim.fs.durable import fsync_path
from srcnet_sim.fs.extents import UNSUPPORTED, collapse_range, insert_range
from srcnet_sim.products.aligned_tar import TarLayout, write_tar
from srcnet_sim.progress import logger

# JSON: {"source": the MS's path (relative to the work directory when inside it), "member": the lead's name in it,
# "size": its bytes, "prefix": K, "times_ns": the access and modification times of the MS's directory and of the
# lead, which the move and the shifts change}
MARKER = "ADOPTED"
IN_PROGRESS = "adopting.tar"  # the lead file while it becomes the tar, in the work directory


def adopt(layout: TarLayout, source: Path, workdir: Path, target_dir: Path) -> Path | None:
    """Turn `source`'s lead file (layout.lead_member, the layout of plan_tar(source)) into the whole tar, returned
    as workdir/IN_PROGRESS (fsynced; the caller renames it into `target_dir`). None, with `source` as it was, where
    this cannot be: no lead file, `source`, `workdir` and `target_dir` not on one filesystem, or a filesystem that
    does not shift extents. Any error restores `source` before it is raised."""
    lead = layout.lead_member
    if lead is None or len({os.stat(p).st_dev for p in (source, workdir, target_dir)}) != 1:
        return None
    marker = workdir / MARKER
    times = [os.stat(path) for path in (source, lead.path)]
    tar = workdir / IN_PROGRESS
    try:
        where = source.relative_to(workdir) if source.is_relative_to(workdir) else source  # a moved volume too
        _write_marker(marker, {"source": str(where), "member": lead.path.name, "size": lead.size,
                               "prefix": lead.data_offset, "times_ns": [[t.st_atime_ns, t.st_mtime_ns] for t in times]})
        os.rename(lead.path, tar)
        fsync_path(source)
        fsync_path(workdir)
        if not _fill_around_lead(tar, layout):
            logger.info("staging: %s cannot shift a file's extents; the MS is copied into its tar", workdir)
            restore(workdir)
            return None
    except BaseException:
        restore(workdir)
        raise
    return tar


def _fill_around_lead(tar: Path, layout: TarLayout) -> bool:
    """Shift the lead file `tar`'s data up to their place in the tar and write the rest of it around them, fsynced;
    False, the file unchanged, when its filesystem cannot shift extents."""
    fd = os.open(tar, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            insert_range(fd, 0, layout.lead_member.data_offset)
        except OSError as exc:
            if exc.errno in UNSUPPORTED:
                return False
            raise
        write_tar(layout, fd, lead_in_place=True)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def restore(workdir: Path) -> bool:
    """Undo what a stopped adopt() left in `workdir`: True when the MS is whole again (or nothing was adopted),
    False when its lead file is gone into a finished tar (moved on towards staging: the MS is spent). The marker
    is removed either way."""
    marker = workdir / MARKER
    try:
        record = json.loads(marker.read_text())
    except FileNotFoundError:
        return True
    except ValueError:  # a torn marker: written before the lead file moved
        marker.unlink()
        return True
    source, size, prefix = workdir / record["source"], int(record["size"]), int(record["prefix"])
    home, tar = source / record["member"], workdir / IN_PROGRESS
    if os.path.lexists(tar):
        fd = os.open(tar, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            length = os.fstat(fd).st_size
            if length > size + prefix:  # headers and other members written after the data: cut them off
                os.ftruncate(fd, size + prefix)
                length = size + prefix
            if length == size + prefix:
                collapse_range(fd, 0, prefix)
            if os.fstat(fd).st_size != size:
                raise OSError(f"{tar} is {os.fstat(fd).st_size} bytes, neither the MS's {home.name} ({size} bytes) "
                              "nor its tar; remove the run's state (--restart)")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tar, home)
        fsync_path(workdir)
        fsync_path(source)
        logger.info("staging: %s put back into %s (it was becoming the staged tar when the run stopped)",
                    home.name, source)
    whole = os.path.isfile(home) and os.path.getsize(home) == size
    if whole:
        for path, times_ns in zip((source, home), record["times_ns"]):  # as they were: their times are in the tar
            os.utime(path, ns=tuple(times_ns))
    marker.unlink()
    fsync_path(workdir)
    return whole


def _write_marker(path: Path, record: dict) -> None:
    """Write `record` to `path` durably (fsynced, and its directory) before anything moves."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record, sort_keys=True))
        handle.flush()
        os.fsync(handle.fileno())
    fsync_path(path.parent)
