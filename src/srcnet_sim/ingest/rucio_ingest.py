"""Ingest a staging area into Rucio following the SRCNet ingestor's contract.

For each `<name>` with `<name>.meta`: upload to the RSE under `namespace:name` with the lifetime,
set the ObsCore metadata, attach to `dataset_name` when given, then move the pair out of the
staging area into the done area (or, with a `<name>.reason` file, into the failed area).
Re-running is harmless: a DID already in Rucio with the same adler32 is not uploaded again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from srcnet_sim.errors import ServiceError
from srcnet_sim.products import sidecar
from srcnet_sim.products.naming import META_SUFFIX
from srcnet_sim.fs.stopping import deferred

logger = logging.getLogger("srcnet_sim")


@dataclass
class IngestReport:
    """Names moved to the done area, and {name: reason} moved to the failed area."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class _LoggerAdapter:
    """rucio-clients 41.5 UploadClient calls its logger as logger.log(level, msg) and, with tracing
    off, as logger(level, msg): this object is both."""

    def __init__(self, target: logging.Logger) -> None:
        self._target = target

    def log(self, level: int, msg: str, *args: object, **kwargs: object) -> None:
        self._target.log(min(level, logging.DEBUG), msg, *args, **kwargs)

    __call__ = log


def pending_pairs(staging_dir: Path) -> list[tuple[Path, Path]]:
    """(data, meta) pairs ready for ingestion: every visible `<name>.meta`, sorted by name."""
    metas = sorted(p for p in staging_dir.glob(f"*{META_SUFFIX}") if not p.name.startswith("."))
    return [(meta.with_name(meta.name[: -len(META_SUFFIX)]), meta) for meta in metas]


def with_retries(action: Callable[[], object], what: str, attempts: int, backoff_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> object:
    """Run `action`, retrying connection failures with exponential back-off; ServiceError when they persist."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from rucio.common.exception import CannotAuthenticate, RucioException, ServerConnectionException, ServiceUnavailable

    # ServerConnectionException: what the client raises when it cannot reach the server to log in
    # (a fresh machine without a cached token).
    transient = (RequestsConnectionError, ServiceUnavailable, ServerConnectionException, CannotAuthenticate,
                 ConnectionError, OSError)
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except transient as exc:
            if attempt == attempts:
                raise ServiceError(f"Rucio unreachable: {what} failed {attempts} times ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}); nothing was removed from staging") from exc
            delay = backoff_s * 2 ** (attempt - 1)
            logger.warning("ingest: %s failed (%s); retrying in %.1f s", what, type(exc).__name__, delay)
            sleep(delay)
        except RucioException:
            raise
    raise AssertionError("unreachable")


def _move(paths: list[Path], directory: Path) -> None:
    """Move a pair out of the staging area together (SIGTERM waits until both moved)."""
    directory.mkdir(parents=True, exist_ok=True)
    with deferred():
        for path in paths:
            if os.path.lexists(path):
                shutil.move(str(path), str(directory / path.name))


def _failure_directory(failed_dir: Path, names: list[str]) -> Path:
    """`failed_dir`, or its first free numbered subdirectory 2/, 3/, ... when a product failed before under
    the same name: a failure never overwrites an earlier one's files."""
    candidate, number = failed_dir, 1
    while any(os.path.lexists(candidate / name) for name in names):
        number += 1
        candidate = failed_dir / str(number)
    return candidate


class Ingestor:
    """Ingest staging areas into one RSE with a rucio Client."""

    def __init__(self, client: object, rse: str, attempts: int = 5, backoff_s: float = 1.0) -> None:
        self.client = client
        self.rse = rse
        self.attempts = attempts
        self.backoff_s = backoff_s

    def _retry(self, action: Callable[[], object], what: str) -> object:
        return with_retries(action, what, self.attempts, self.backoff_s)

    def run(self, staging_dir: Path, done_dir: Path, failed_dir: Path) -> IngestReport:
        report = IngestReport()
        for data, meta in pending_pairs(staging_dir):
            name = data.name
            reason = self._check(data, meta)
            if reason is None:
                document = json.loads(meta.read_text())
                reason = self._ingest_one(data, document)
            if reason is None:
                _move([data, meta], done_dir)
                report.done.append(name)
                logger.info("ingest: %s:%s done", json.loads((done_dir / meta.name).read_text())["namespace"], name)
            else:
                where = _failure_directory(failed_dir, [name, meta.name, f"{name}.reason"])
                _move([data, meta], where)
                (where / f"{name}.reason").write_text(reason + "\n")
                report.failed[name] = reason
                logger.warning("ingest: %s failed: %s", name, reason)
        return report

    @staticmethod
    def _check(data: Path, meta: Path) -> str | None:
        """Why this pair cannot be ingested, or None. Links are never followed: the staging area is shared."""
        for path in (meta, data):
            if path.is_symlink():
                return f"{path.name} is a symbolic link, not a staged file"
        if not meta.is_file():
            return f"{meta.name} is not a regular file"
        try:
            document = json.loads(meta.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return f"{meta.name} is not valid JSON ({exc})"
        except OSError as exc:
            return f"{meta.name} cannot be read ({exc.strerror})"
        problem = sidecar.problem(document)
        if problem:
            return f"{meta.name} does not follow the sidecar schema: {problem}"
        if document["name"] != data.name:
            return f"{meta.name} names {document['name']!r}, not its data file {data.name!r}"
        if not data.is_file():
            return f"{meta.name} has no data file {data.name}"
        return None

    def _ingest_one(self, data: Path, document: dict) -> str | None:
        """Upload, set metadata, attach; None on success, the reason on a permanent failure."""
        from rucio.common.exception import DataIdentifierNotFound, RucioException
        from rucio.common.checksum import adler32

        scope, name = document["namespace"], document["name"]
        checksum = adler32(str(data))
        try:
            try:
                existing = self._retry(lambda: self.client.get_metadata(scope, name), f"looking up {scope}:{name}")
            except DataIdentifierNotFound:
                existing = None
            if existing is None:
                self._upload(data, scope, name, document["lifetime"])
            elif existing.get("adler32") != checksum:
                return f"{scope}:{name} exists in Rucio with adler32 {existing.get('adler32')}, the file has {checksum}"
            self._retry(lambda: self.client.set_metadata_bulk(scope, name, document["meta"]), f"setting metadata of {scope}:{name}")
            if document.get("dataset_name"):
                self._attach(scope, name, document["dataset_name"])
        except RucioException as exc:
            return f"Rucio refused {scope}:{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None

    def _upload(self, data: Path, scope: str, name: str, lifetime: int) -> None:
        from rucio.client.uploadclient import UploadClient

        uploader = UploadClient(_client=self.client, logger=_LoggerAdapter(logger), tracing=False)
        item = {"path": str(data), "rse": self.rse, "did_scope": scope, "did_name": name, "lifetime": lifetime,
                "register_after_upload": True}
        self._retry(lambda: uploader.upload([item]), f"uploading {scope}:{name}")

    def _attach(self, scope: str, name: str, dataset: str) -> None:
        from rucio.common.exception import DataIdentifierAlreadyExists, FileAlreadyExists, RucioException

        try:
            self._retry(lambda: self.client.add_dataset(scope, dataset), f"creating dataset {scope}:{dataset}")
        except DataIdentifierAlreadyExists:
            pass
        try:
            self._retry(lambda: self.client.attach_dids(scope, dataset, [{"scope": scope, "name": name}]),
                        f"attaching {scope}:{name} to {dataset}")
        except (FileAlreadyExists, RucioException) as exc:
            if "already" not in str(exc).lower() and not isinstance(exc, FileAlreadyExists):
                raise


def connect(attempts: int = 5, backoff_s: float = 1.0) -> object:
    """A rucio Client from the usual configuration (RUCIO_CONFIG or /opt/rucio/etc/rucio.cfg), checked to
    reach the server before anything in the staging area is touched. The command line runs it with
    RUCIO_CLIENT_MODE=1 (srcnet_sim.run.runtime), so that a server configuration is never read as the client's."""
    from rucio.client import Client

    # The client logs every failed connection as an ERROR of its own; ours says each failure once (and
    # the last one as the CLI's one-line error), so the client's own messages go to debug level.
    quiet = logging.getLogger("srcnet_sim.rucio_client")
    quiet.setLevel(logging.CRITICAL + 1 if not logger.isEnabledFor(logging.DEBUG) else logging.DEBUG)

    def reach() -> object:
        client = Client(logger=quiet)
        client.ping()  # the constructor does not always talk to the server
        client.whoami()
        return client

    return with_retries(reach, "connecting to Rucio", attempts, backoff_s)
