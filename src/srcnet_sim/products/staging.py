"""Atomic staging into the ingestor's area: hidden temporary name on the same filesystem, fsync,
rename; the `.meta` sidecar last, also atomically. The ingestor never sees half a product, and
never a `.meta` without its data."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from srcnet_sim.errors import UserInputError
from srcnet_sim.products.naming import META_SUFFIX

PARTIAL_MARK = ".partial-"


def partial_path(final: Path) -> Path:
    """The hidden name a product is written under before it is renamed into place."""
    return final.with_name(f".{final.name}{PARTIAL_MARK}{os.getpid()}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(final: Path, write: Callable[[Path], None]) -> Path:
    """Run write(hidden_path), fsync, rename to `final`, fsync the directory. Nothing is left on failure."""
    hidden = partial_path(final)
    try:
        write(hidden)
        _fsync_file(hidden)
        os.replace(hidden, final)
        _fsync_dir(final.parent)
    except BaseException:
        hidden.unlink(missing_ok=True)
        raise
    return final


def tar_directory(source: Path, target: Path) -> None:
    """An uncompressed tar of `source` (a MeasurementSet) with the directory as its top member."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(source, arcname=source.name)


def copy_file(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def write_json(document: dict) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return write


def meta_path(product: Path) -> Path:
    return product.with_name(product.name + META_SUFFIX)


def check_free_to_stage(directory: Path, names: list[str], overwrite: bool) -> None:
    """Refuse (before any work) to replace a staged product silently.

    A product whose `.meta` exists is complete and may be on its way to Rucio: only --overwrite
    replaces it. A product without `.meta` is the remains of an interrupted run (the sidecar comes
    last), and leftover hidden partial files of these names are removed.
    """
    for name in names:
        staged = directory / name
        if meta_path(staged).exists() and not overwrite:
            raise UserInputError("FILE_PREFIX", f"{staged} is staged already (with its .meta); choose another FILE_PREFIX "
                                 "or OBS_ID, or add --overwrite")
        for leftover in directory.glob(f".{name}{PARTIAL_MARK}*") if directory.is_dir() else ():
            leftover.unlink(missing_ok=True)


def stage(product: Path, directory: Path, name: str, make_sidecar: Callable[[Path], dict], overwrite: bool) -> Path:
    """Place `product` (a file, or a directory staged as a tar) at directory/name, then its sidecar.

    make_sidecar(staged_path) builds (and validates) the sidecar from the staged file. With
    overwrite, an existing sidecar is removed first, so that the ingestor cannot pair the old
    sidecar with the new data while it is being replaced.
    """
    final = directory / name
    meta = meta_path(final)
    if overwrite and meta.exists():
        meta.unlink()
        _fsync_dir(directory)
    if product.is_dir():
        publish(final, lambda target: tar_directory(product, target))
    else:
        publish(final, lambda target: copy_file(product, target))
    publish(meta, write_json(make_sidecar(final)))
    return final
