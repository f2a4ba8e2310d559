"""Files a user hands the run (catalogues, TOML, telescope layouts, MeasurementSets, FITS): checked before reading.

Every such file is opened only if it is a regular file (a symbolic link is followed to what it names: a
FIFO, a device, a socket or a directory is refused, so nothing can block or read forever), its size is
bounded where the format is text, and text is decoded by one stated rule: UTF-8, with or without a
byte-order mark, any line ending. Anything else is one UserInputError naming the setting, the file and,
for undecodable text, the line and byte.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from srcnet_sim.errors import UserInputError

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MiB = 2**20
# Text inputs are read whole: a catalogue of ten million sources as CSV is about 1 GiB.
MAX_CATALOGUE_TEXT_BYTES = 2048 * MiB
MAX_TOML_BYTES = 1 * MiB
MAX_LAYOUT_TEXT_BYTES = 64 * MiB


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _unusable(path: Path, setting: str, what: str, exc: OSError) -> UserInputError:
    """The error for a path that cannot be opened or stat'ed."""
    if isinstance(exc, FileNotFoundError):
        detail = " (a link to nothing)" if os.path.islink(path) else ""
        return UserInputError(setting, f"{what} {path} does not exist{detail}")
    return UserInputError(setting, f"{what} {path} cannot be read ({exc.strerror})")


def _mode(path: Path, setting: str, what: str) -> int:
    """st_mode of what `path` names (after links); UserInputError where it cannot be stat'ed."""
    try:
        return os.stat(path).st_mode
    except OSError as exc:
        raise _unusable(path, setting, what, exc) from None


def regular_file(path: Path, setting: str, what: str) -> Path:
    """`path` if it names a regular file (after links); else UserInputError saying what it is."""
    mode = _mode(path, setting, what)
    if not stat.S_ISREG(mode):
        raise UserInputError(setting, f"{what} {path} is {_kind(mode)}, not a regular file")
    return path


def directory(path: Path, setting: str, what: str) -> Path:
    """`path` if it names a directory (after links); else UserInputError saying what it is."""
    mode = _mode(path, setting, what)
    if not stat.S_ISDIR(mode):
        raise UserInputError(setting, f"{what} {path} is {'a file' if stat.S_ISREG(mode) else _kind(mode)}, "
                             "not a directory")
    return path


def read_bytes(path: Path, setting: str, what: str, max_bytes: int) -> bytes:
    """The whole of a regular file of at most `max_bytes`, checked on the open descriptor (no race with a swap;
    O_NONBLOCK: opening a FIFO does not wait for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _unusable(path, setting, what, exc) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UserInputError(setting, f"{what} {path} is {_kind(info.st_mode)}, not a regular file")
    too_large = info.st_size > max_bytes
    with os.fdopen(fd, "rb") as handle:
        data = b"" if too_large else handle.read(max_bytes + 1)  # a file growing meanwhile is bounded too
    if too_large or len(data) > max_bytes:
        raise UserInputError(setting, f"{what} {path} is larger than {max_bytes // MiB} MiB, the most this reads")
    return data


def decode_text(data: bytes, path: Path, setting: str, what: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); anything else refused naming the line and byte."""
    if data.startswith(UTF16_BOMS):
        raise UserInputError(setting, f"{what} {path} is UTF-16 text; save it as UTF-8 (with or without BOM)")
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UserInputError(setting, f"{what} {path}: line {line}, byte {column} (0x{data[exc.start]:02x}) is not "
                             "UTF-8; save the file as UTF-8 (with or without BOM)") from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise UserInputError(setting, f"{what} {path}: line {line} holds a NUL byte: not UTF-8 text (UTF-16 without "
                             "a byte-order mark, or binary?)")
    return text


def read_text(path: Path, setting: str, what: str, max_bytes: int) -> str:
    """A regular file's UTF-8 text (see the module docstring)."""
    return decode_text(read_bytes(path, setting, what, max_bytes), path, setting, what)
