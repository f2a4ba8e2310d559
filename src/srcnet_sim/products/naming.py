"""Rucio naming rules (its generic schema), checked before any work starts."""

from __future__ import annotations

import re

from srcnet_sim.errors import UserInputError

SCOPE_PATTERN = re.compile(r"^[a-zA-Z_\-.0-9]+$")
SCOPE_MAX = 25
# Rucio allows '/' in names; a staged file name cannot hold one, and '..' is refused too.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]*$")
NAME_MAX = 250
META_SUFFIX = ".meta"


def check_scope(namespace: str) -> None:
    if not SCOPE_PATTERN.match(namespace) or len(namespace) > SCOPE_MAX or namespace in (".", ".."):
        raise UserInputError("RUCIO_NAMESPACE", f"{namespace!r} is not a Rucio scope: use up to {SCOPE_MAX} letters, "
                             "digits, '_', '-' or '.'")


def check_name(name: str, setting: str = "FILE_PREFIX") -> None:
    """A staged file name (its .meta included) must be a valid Rucio DID name without path separators."""
    longest = name + META_SUFFIX
    if not NAME_PATTERN.match(name) or ".." in name or len(longest) > NAME_MAX:
        raise UserInputError(setting, f"product name {name!r} is not a Rucio name: start with a letter or digit, then "
                             f"letters, digits, '.', '-', '_' (no '/' or '..'), at most {NAME_MAX - len(META_SUFFIX)} characters")
