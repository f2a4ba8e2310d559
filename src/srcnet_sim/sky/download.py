"""SKY_MODEL=MIGHTEE_L1 without SKY_MODEL_PATH: download the survey once into a cache and reuse it.

The seed workflow (Karabo) fetches the MIGHTEE COSMOS Early Science Level-1 catalogue from its
public object store at run time and caches it; this module does the same, safely:

- one download at a time per cache (an exclusive `fcntl.flock` on `<file>.lock`): a second run
  waits, then reuses the copy the first one made;
- the bytes go to a temporary name created exclusively in the cache directory (`mkstemp`),
  are fsync'ed, verified (a FITS binary table with the survey's columns and 9,896 rows, readable
  by our MIGHTEE reader) and only then renamed over the cached name (`os.replace`); a partial or
  wrong file is removed and never used;
- progress (bytes, %, rate) is logged at most every PROGRESS_EVERY_S seconds;
- every failure (no network, a refusing server, an HTTP error, a truncated or wrong file, a full
  or unwritable cache) is a one-line UserInputError that says how to run offline (SKY_MODEL_PATH).
"""

from __future__ import annotations

import errno
import fcntl
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from srcnet_sim.config import MIGHTEE_L1_URL
from srcnet_sim.fs.durable import fsync_path
from srcnet_sim.errors import UserInputError
from srcnet_sim.progress import logger
from srcnet_sim.fs.space import free_bytes
from srcnet_sim.sizing import human

MIGHTEE_L1_ROWS = 9_896
# The columns the seed maps (Karabo: RA, DEC, S_PEAK, NU_EFF, IM_MAJ, IM_MIN, IM_PA, NAME as the id).
MIGHTEE_L1_COLUMNS = ("NAME", "RA", "DEC", "S_PEAK", "NU_EFF", "IM_MAJ", "IM_MIN", "IM_PA")
MAX_DOWNLOAD_BYTES = 512 * 2**20  # the catalogue is a few MB; anything this large is not it
FREE_SPACE_MARGIN_BYTES = 16 * 2**20
CHUNK_BYTES = 256 * 1024
TIMEOUT_S = 60.0  # no byte for this long: the transfer has stalled
PROGRESS_EVERY_S = 10.0
# Errors writing into the cache that a user fixes (space, quota, permissions, a read-only volume).
CACHE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)
CACHE_ENV = "SKY_MODEL_CACHE"
URL_SETTING = "MIGHTEE_L1_URL"
OFFLINE_HINT = ("to run offline, download the file once elsewhere and set SKY_MODEL_PATH to it "
                "(or set MIGHTEE_L1_URL to a reachable mirror)")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/srcnet-sim, else ~/.cache/srcnet-sim (the user's cache directory)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "srcnet-sim"


def cache_dir(setting: str | None) -> Path:
    """SKY_MODEL_CACHE, or the default cache directory."""
    return Path(setting).expanduser() if setting else default_cache_dir()


def cached_path(cache: Path, url: str) -> Path:
    """Where the catalogue of `url` is kept: <cache>/surveys/<the URL's file name>."""
    name = Path(urllib.parse.urlsplit(url).path).name
    if name in ("", ".", ".."):
        raise UserInputError(URL_SETTING, f"{url!r} names no file; give the URL of the .fits catalogue")
    return cache / "surveys" / name


def verify(path: Path, source: str) -> str | None:
    """Why `path` is not the MIGHTEE Level-1 catalogue, or None when it is.

    A complete FITS file (a whole number of 2880-byte blocks, as long as its headers say) whose
    first extension is a binary table with the survey's columns and row count, readable by our reader.
    """
    from astropy.io import fits

    from srcnet_sim.sky.catalogues import read_mightee_fits

    size = path.stat().st_size
    if size == 0 or size % 2880:
        return f"{source} is not a complete FITS file ({size} bytes, not a whole number of 2880-byte blocks)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is checked below, from the headers' own sizes
            with fits.open(path, memmap=False) as hdus:
                hdus.readall()
                end = max(info["datLoc"] + info["datSpan"] for info in (hdus.fileinfo(i) for i in range(len(hdus))))
                if end > size:
                    return f"{source} is truncated ({size} of the {end} bytes its headers describe)"
                if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU):
                    return f"{source} is a FITS file without a binary table extension"
                table = hdus[1]
                missing = [c for c in MIGHTEE_L1_COLUMNS if c not in table.columns.names]
                if missing:
                    return f"{source} lacks the MIGHTEE Level-1 columns {', '.join(missing)}"
                if table.header.get("NAXIS2") != MIGHTEE_L1_ROWS:
                    return f"{source} holds {table.header.get('NAXIS2')} rows, the MIGHTEE Level-1 catalogue {MIGHTEE_L1_ROWS}"
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        return f"{source} is not a readable FITS file ({_reason(exc)})"
    try:
        read_mightee_fits(path, URL_SETTING)
    except UserInputError as exc:
        return str(exc).removeprefix(f"{URL_SETTING}: ")
    return None


def fetch_mightee_l1(cache_setting: str | None, url: str = MIGHTEE_L1_URL) -> Path:
    """The cached MIGHTEE Level-1 catalogue, downloaded from `url` first when the cache lacks a good copy."""
    cache = cache_dir(cache_setting)
    target = cached_path(cache, url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(target.with_name(target.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise UserInputError(CACHE_ENV, f"cannot use {target.parent} as the sky-model cache ({exc.strerror}); "
                             f"point SKY_MODEL_CACHE at a writable directory, or {OFFLINE_HINT}") from exc
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("sky: another run is downloading %s; waiting for it", target.name)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        _remove_leftovers(target)
        if target.is_file():
            problem = verify(target, str(target))
            if problem is None:
                logger.info("sky: MIGHTEE Level-1 catalogue from the cache %s", target)
                return target
            logger.warning("sky: the cached copy is unusable (%s); downloading it again", problem)
        _download(url, target)
        return target
    finally:
        os.close(lock_fd)  # releases the lock


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}."


def _remove_leftovers(target: Path) -> None:
    """Remove partial downloads of runs that died (only possible while holding the lock)."""
    for leftover in target.parent.glob(_temporary_prefix(target) + "*.part"):
        leftover.unlink(missing_ok=True)


def _download(url: str, target: Path) -> None:
    """GET `url` into a temporary file beside `target`, verify it, then rename it to `target`."""
    from srcnet_sim import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"srcnet-sim/{__version__}"})

    def failed(what: str) -> UserInputError:
        return UserInputError(URL_SETTING, f"cannot download the MIGHTEE Level-1 catalogue from {url}: {what}; "
                              f"{OFFLINE_HINT}")

    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked: http(s)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise failed(f"the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise failed(f"{_reason(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise failed(_reason(exc)) from None
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and expected > MAX_DOWNLOAD_BYTES:
            raise failed(f"the server offers {human(expected)}, not a catalogue of a few MB")
        need = (expected or 0) + FREE_SPACE_MARGIN_BYTES
        free = free_bytes(target.parent)
        if free < need:
            raise UserInputError(CACHE_ENV, f"{target.parent} has {human(free)} free but the MIGHTEE catalogue needs "
                                 f"about {human(need)}; free space or point SKY_MODEL_CACHE elsewhere, or {OFFLINE_HINT}")
        logger.info("sky: downloading %s (%s) into %s", url, human(expected) if expected else "size unknown", target.parent)
        partial = None
        try:
            fd, name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".part", dir=target.parent)
            partial = Path(name)
            with os.fdopen(fd, "wb") as out:
                received = _copy(response, out, expected, failed)
                out.flush()
                os.fsync(out.fileno())
            if expected is not None and received != expected:
                raise failed(f"the transfer ended after {received} of {expected} bytes")
            problem = verify(partial, "the file")
            if problem is not None:
                raise failed(problem)
            os.chmod(partial, 0o644)
            os.replace(partial, target)
            fsync_path(target.parent)
        except OSError as exc:
            if exc.errno in CACHE_ERRNOS:
                raise UserInputError(CACHE_ENV, f"cannot write the catalogue into {target.parent} ({exc.strerror}); "
                                     f"free space or point SKY_MODEL_CACHE elsewhere, or {OFFLINE_HINT}") from None
            raise
        finally:
            if partial is not None:
                partial.unlink(missing_ok=True)
    logger.info("sky: cached %s (%s)", target, human(target.stat().st_size))


def _copy(response, out, expected: int | None, failed) -> int:
    """Copy the body in chunks, logging progress at a bounded rate; returns the bytes received."""
    received = 0
    start = last = time.monotonic()
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except http.client.IncompleteRead as exc:
            raise failed(f"the transfer ended after {received + len(exc.partial)} of {expected} bytes") from None
        except (OSError, http.client.HTTPException) as exc:
            raise failed(f"the transfer broke after {received} bytes ({_reason(exc)})") from None
        if not chunk:
            return received
        received += len(chunk)
        if received > MAX_DOWNLOAD_BYTES:
            raise failed(f"more than {human(MAX_DOWNLOAD_BYTES)} arrived, not a catalogue of a few MB")
        out.write(chunk)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            rate = received / max(now - start, 1e-9)
            share = f"{100 * received // expected} % " if expected else ""
            logger.info("sky: download %s(%s of %s, %s/s)", share, human(received),
                        human(expected) if expected else "?", human(rate))


def _reason(reason: object) -> str:
    """A short, one-line reason of a network error."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0]



def uses_download(sky_model: str, sky_model_path: str | None) -> bool:
    """Whether these settings take the sky from the download cache (MIGHTEE_L1 without SKY_MODEL_PATH)."""
    return sky_model.strip().upper() == "MIGHTEE_L1" and not sky_model_path


def cached_bytes(sky_model: str, sky_model_path: str | None, cache_setting: str | None, url: str) -> int:
    """Bytes the download cache holds for these settings' sky (0 when they need no download or it is not there yet)."""
    if not uses_download(sky_model, sky_model_path):
        return 0
    path = cached_path(cache_dir(cache_setting), url)
    return path.stat().st_size if path.is_file() else 0
