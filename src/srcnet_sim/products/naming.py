"""Rucio naming rules (its generic schema), checked before any work starts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from srcnet_sim.errors import UserInputError

SCOPE_PATTERN = re.compile(r"[a-zA-Z_\-.0-9]+")  # used with fullmatch: no trailing newline slips through
SCOPE_MAX = 25
# Rucio allows '/' in names; a staged file name cannot hold one, and '..' is refused too.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")
NAME_MAX = 250
META_SUFFIX = ".meta"


def check_scope(namespace: str) -> None:
    if not SCOPE_PATTERN.fullmatch(namespace) or len(namespace) > SCOPE_MAX or namespace in (".", ".."):
        raise UserInputError("RUCIO_NAMESPACE", f"{namespace!r} is not a Rucio scope: use up to {SCOPE_MAX} letters, "
                             "digits, '_', '-' or '.'")


def check_name(name: str, setting: str = "FILE_PREFIX") -> None:
    """A staged file name (its .meta included) must be a valid Rucio DID name without path separators."""
    longest = name + META_SUFFIX
    if not NAME_PATTERN.fullmatch(name) or ".." in name or len(longest) > NAME_MAX:
        raise UserInputError(setting, f"product name {name!r} is not a Rucio name: start with a letter or digit, then "
                             f"letters, digits, '.', '-', '_' (no '/' or '..'), at most {NAME_MAX - len(META_SUFFIX)} characters")


# Room a run needs around a file name it creates: the hidden temporary name staging writes first
# ('.' + name + a unique suffix) and, in the scratch directory, the MeasurementSet's subtables
# (<name>/DATA_DESCRIPTION/table.info) under the run's own scratch directory.
HIDDEN_NAME_RESERVE = 48
SCRATCH_PATH_RESERVE = 96
DEFAULT_NAME_MAX, DEFAULT_PATH_MAX = 255, 4096


def filesystem_limits(directory: Path) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) in bytes of the filesystem that holds `directory` (or its nearest existing parent)."""
    probe = Path(os.path.abspath(directory))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    limits = []
    for key, default in (("PC_NAME_MAX", DEFAULT_NAME_MAX), ("PC_PATH_MAX", DEFAULT_PATH_MAX)):
        try:
            limits.append(min(os.pathconf(probe, key), default))
        except (OSError, ValueError):
            limits.append(default)
    return limits[0], limits[1]


def check_path_lengths(directory: Path, names: Iterable[str], directory_setting: str, inside_bytes: int = 0,
                       name_setting: str = "FILE_PREFIX") -> None:
    """Refuse names whose files, or the hidden temporary names written first, exceed NAME_MAX or PATH_MAX.

    directory: where the files go; names: file names created there; inside_bytes: how much longer the
    deepest path the run creates below `directory` may be (scratch directory, MS subtables).
    """
    name_max, path_max = filesystem_limits(directory)
    base = len(os.fsencode(os.path.abspath(directory)))
    for name in names:
        length = len(os.fsencode(name))
        if length + HIDDEN_NAME_RESERVE > name_max:
            raise UserInputError(name_setting, f"file name {name!r} is {length} bytes; with the hidden temporary name "
                                 f"written first, names must stay within {name_max - HIDDEN_NAME_RESERVE} bytes "
                                 f"(NAME_MAX {name_max}); shorten {name_setting}")
        deepest = base + 1 + length + HIDDEN_NAME_RESERVE + inside_bytes
        if deepest > path_max:
            raise UserInputError(directory_setting, f"{os.path.join(directory, name)} and the paths made beside or "
                                 f"below it would reach {deepest} bytes, over PATH_MAX {path_max}; use a shorter "
                                 f"{directory_setting} path or {name_setting}")
