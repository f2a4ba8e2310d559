"""Safe staging into the ingestor's shared area.

A run first claims the final names (claims), then makes each product and its `.meta` in its own
private directory inside the staging area (scratch.live_directory: mkdir'ed, mode 0700, random
name, removed at the end or by the next run when this one was killed). Files there are created
with O_EXCL|O_NOFOLLOW and fsynced. Publishing renames them into place, data first and `.meta`
last, with RENAME_NOREPLACE (or link + unlink where the filesystem has no renameat2): a rename
never replaces another file, and no name in the staging area is ever opened for writing, so a
link planted there is never followed nor published. The ingestor never sees half a product nor
a `.meta` without its data.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from srcnet_sim.fs.durable import fsync_path
from srcnet_sim.fs.filecopy import COPY_BUFFER_BYTES, copy_range
from srcnet_sim.errors import UserInputError
from srcnet_sim.products.adopted_tar import IN_PROGRESS, adopt, restore
from srcnet_sim.products.aligned_tar import plan_tar, write_aligned_tar, write_tar
from srcnet_sim.products.naming import META_SUFFIX
from srcnet_sim.fs.stopping import deferred

PARTIAL_SUFFIX = ".partial"
RENAME_NOREPLACE = 1
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def meta_path(product: Path) -> Path:
    return product.with_name(product.name + META_SUFFIX)



def rename_noreplace(source: Path, target: Path) -> None:
    """Rename `source` to `target` atomically, FileExistsError when `target` exists (even as a link)."""
    if _renameat2 is not None:
        if _renameat2(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # not supported by this filesystem: fall back
            raise OSError(code, os.strerror(code), str(target))
    os.link(source, target, follow_symlinks=False)  # fails with EEXIST, never replaces
    os.unlink(source)


def write_new_file(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Create `path` exclusively (O_EXCL|O_NOFOLLOW, 0644), fill it with write(file), fsync; removed on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def tar_directory(source: Path) -> Callable[[BinaryIO], None]:
    """Writer of an uncompressed tar of `source` (a MeasurementSet) with the directory as its top member, its
    files' data 4 KiB-aligned and copied in the kernel (products.aligned_tar: shared blocks, not a second copy,
    where the filesystem can)."""
    def write(handle: BinaryIO) -> None:
        write_aligned_tar(source, handle)
    return write


ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # every member's time: a store's zip depends only on its files' bytes


def zip_store(source: Path) -> Callable[[BinaryIO], None]:
    """Writer of an uncompressed (stored) zip of the zarr store `source`, its files at the zip's root in sorted order,
    which zarr's ZipStore (and so xarray) opens in place: the members need no unpacking and chunks are read where
    they lie. Member times and modes are fixed, so the zip of a resumed run equals an uninterrupted one's."""
    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=ZIP_DATE_TIME)
                info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_STORED, 3, 0o100644 << 16
                info.file_size = path.stat().st_size
                with open(path, "rb") as data, archive.open(info, "w", force_zip64=info.file_size >= zipfile.ZIP64_LIMIT) as member:
                    shutil.copyfileobj(data, member, COPY_BUFFER_BYTES)
    return write


def copy_of(source: Path) -> Callable[[BinaryIO], None]:
    """Writer of a copy of the file `source`, in the kernel (fs.filecopy: shared blocks where the filesystem can)."""
    def write(handle: BinaryIO) -> None:
        handle.flush()
        start = handle.tell()
        with open(source, "rb") as data:
            size = os.fstat(data.fileno()).st_size
            copy_range(data.fileno(), handle.fileno(), size, 0, start)
        handle.seek(start + size)
    return write


def json_document(document: dict) -> Callable[[BinaryIO], None]:
    def write(handle: BinaryIO) -> None:
        handle.write((json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return write


def text(content: str) -> Callable[[BinaryIO], None]:
    return lambda handle: handle.write(content.encode())


def _entry(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_free_to_stage(directory: Path, names: list[str], with_sidecar: set[str], overwrite: bool) -> None:
    """Refuse (before any work, with the names claimed) to replace a staged product silently.

    A product is staged when its `.meta` exists (or, for a file without sidecar, when it exists): only
    --overwrite replaces it. A product without its `.meta` is the remains of an interrupted run and is
    replaced. Anything but a regular file at one of these names was not put there by srcnet-sim: refused.
    """
    for name in names:
        final = directory / name
        paths = (final, meta_path(final)) if name in with_sidecar else (final,)
        for path in paths:
            info = _entry(path)
            if info is not None and not stat.S_ISREG(info.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                raise UserInputError("OUT_DIR", f"{path} is {kind}, not a staged product; remove it")
        if _entry(paths[-1]) is not None and not overwrite:
            what = "with its .meta" if name in with_sidecar else "complete"
            raise UserInputError("FILE_PREFIX", f"{final} is staged already ({what}); choose another FILE_PREFIX "
                                 "or OBS_ID, or add --overwrite")


@dataclass(frozen=True)
class Prepared:
    """A product made in the private directory, with its sidecar (None for a file staged without one)."""

    data: Path
    meta: Path | None
    final: Path
    adopted_in: Path | None = None  # the work directory of a tar made around its MS's DATA file (prepare_adopted)


def prepare(private_dir: Path, final: Path, write: Callable[[BinaryIO], None],
            make_sidecar: Callable[[Path, int], dict] | None) -> Prepared:
    """Write the product into `private_dir` and, from that file, its sidecar.

    make_sidecar(path, size in bytes) builds (and validates) the sidecar of the written file. Both names end in
    `.partial`, so that an ingestor that walks subdirectories never sees a pair before it is published.
    """
    data = write_new_file(private_dir / (final.name + PARTIAL_SUFFIX), write)
    meta = None
    if make_sidecar is not None:
        meta = write_new_file(private_dir / (final.name + META_SUFFIX + PARTIAL_SUFFIX),
                              json_document(make_sidecar(data, data.stat().st_size)))
    return Prepared(data, meta, final)


def prepare_adopted(private_dir: Path, final: Path, source: Path, workdir: Path,
                    make_sidecar: Callable[[Path, int], dict], into: list[Prepared]) -> Prepared:
    """prepare() of the tar of the MS `source` without a second copy of its DATA column where the filesystem allows
    (products.adopted_tar: `workdir`, the run's resumable state, holds the work and its marker), else copied; the
    same bytes either way. The sidecar is built first, from the whole MS and the tar's planned size; once the tar is
    made around the DATA file, `source` lacks it (the MS is spent: stage it last). The result is appended to `into`
    before a signal can stop the run (deferred), so that the caller can always take_back(into)."""
    layout = plan_tar(source)
    data = private_dir / (final.name + PARTIAL_SUFFIX)
    meta = write_new_file(private_dir / (final.name + META_SUFFIX + PARTIAL_SUFFIX),
                          json_document(make_sidecar(data, layout.size)))
    adopted = adopt(layout, source, workdir, private_dir)
    if adopted is None:
        write_new_file(data, lambda handle: write_tar(layout, handle.fileno()))
        into.append(Prepared(data, meta, final))
    else:
        with deferred():  # the tar leaves the state directory and is listed in one step, whatever signal comes
            rename_noreplace(adopted, data)
            into.append(Prepared(data, meta, final, workdir))
        fsync_path(private_dir)
        fsync_path(workdir)
    if data.stat().st_size != layout.size:
        raise OSError(f"{data} is {data.stat().st_size} bytes where its layout gave {layout.size}: the MS changed "
                      "while it was staged")
    return into[-1]


def take_back(items: list[Prepared]) -> None:
    """After a failure or a signal before they were published: give each tar made around its MS's DATA file back
    to its MS (products.adopted_tar.restore), so that the kept state resumes a whole MS."""
    for item in items:
        if item.adopted_in is not None and os.path.lexists(item.data):
            os.rename(item.data, item.adopted_in / IN_PROGRESS)
            restore(item.adopted_in)


def _remove_previous(item: Prepared, overwrite: bool) -> None:
    """Unlink what a claimed name holds (the sidecar first, so the ingestor never pairs old with new):
    a leftover of a killed run, or, with `overwrite`, a staged product."""
    complete = meta_path(item.final) if item.meta is not None else item.final
    if not overwrite and _entry(complete) is not None:
        raise UserInputError("FILE_PREFIX", f"{complete} appeared while this run held its claim: another program "
                             "writes the staging area without claims; nothing was replaced")
    for path in (meta_path(item.final), item.final):
        info = _entry(path)
        if info is not None:
            if not stat.S_ISREG(info.st_mode):
                raise UserInputError("OUT_DIR", f"{path} was replaced by something other than a file during the run; "
                                     "remove it")
            path.unlink()
    fsync_path(item.final.parent)


def publish(item: Prepared, overwrite: bool) -> Path:
    """Move a prepared product into place, then its `.meta`; the caller holds the claim of the name.

    What the name held before (a leftover of a killed run, or a product `overwrite` replaces, as
    checked before the work) is removed first. A file that appears at the name meanwhile is never
    replaced: that stops the run with the product unpublished.
    """
    target = item.final
    with deferred():  # a product and its sidecar go in together, or neither (also when a signal comes)
        try:
            _remove_previous(item, overwrite)
            rename_noreplace(item.data, target)
            if item.meta is not None:
                target = meta_path(item.final)
                rename_noreplace(item.meta, target)
        except FileExistsError as exc:
            if target != item.final:  # the data went in, its sidecar could not: take the data back out
                rename_noreplace(item.final, item.data)
            raise UserInputError("OUT_DIR", f"{target} appeared while this run held its claim: another program "
                                 "writes the staging area without claims; nothing was replaced") from exc
    fsync_path(item.final.parent)
    return item.final
