"""The resumable state of a run's MeasurementSet: the partial MS and a journal of the blocks written.

One state directory per product name, TMPDIR/srcnet-resume-<key> with key = a hash of
OUT_DIR/RUCIO_NAMESPACE/FILE_PREFIX, holding
- ALIVE: flocked by the run using it (see livelock), so two live runs never share it;
- state.json: the settings of the run (those that change the MS), written once;
- journal: one line "time_start time_stop chan_start chan_stop" per block written, appended and
  fsync'ed after the block's rows are flushed and fsync'ed in the MS;
- <FILE_PREFIX>measurements.ms: the MS being written;
- while the MS's tar is made around its DATA file, that file and a marker (products.adopted_tar), which the next
  run puts back into the MS (or, once the tar has left for staging, finds the MS spent and makes it again).

It outlives SIGKILL, SIGTERM (eviction) and a failure, and is adopted by the next run with the same
settings, which skips every time step already written; a run with other settings is refused with
one line unless it is started with --restart, which removes it. It is removed when its run has staged
its products. Its name does not start with scratch.SCRATCH_PREFIX: the sweep of dead scratch never
removes it. A state no run has touched for ABANDONED_AFTER_S (its Job failed for good, or its names
were never used again: a CronJob gives every run new names) is removed by the next run on that volume,
so that abandoned states do not fill a persistent scratch volume.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srcnet_sim.fs import livelock
from srcnet_sim.config import Settings
from srcnet_sim.errors import UserInputError
from srcnet_sim.products.adopted_tar import restore
from srcnet_sim.progress import logger

STATE_PREFIX = "srcnet-resume-"
ALIVE = "ALIVE"
STATE_FILE = "state.json"
JOURNAL = "journal"
ABANDONED_AFTER_S = 7 * 24 * 3600.0  # a week: far longer than any Job's retries
# Settings that choose how the blocks are computed, never what they hold.
EXECUTION_SETTINGS = ("executor", "dask_scheduler_address", "dask_workers", "memory_limit", "worker_threads")


def state_directory(tmp_parent: Path, product_dir: Path, file_prefix: str) -> Path:
    """TMPDIR/srcnet-resume-<hash of OUT_DIR/RUCIO_NAMESPACE/FILE_PREFIX>."""
    key = hashlib.sha256(f"{os.path.abspath(product_dir)}/{file_prefix}".encode()).hexdigest()[:24]
    return Path(tmp_parent) / f"{STATE_PREFIX}{key}"


def defining_settings(settings: Settings) -> dict:
    """The settings a resumed run must share with the interrupted one: all but EXECUTION_SETTINGS."""
    values = settings.model_dump()
    return {name: value for name, value in sorted(values.items()) if name not in EXECUTION_SETTINGS}


def _read_state(directory: Path) -> dict | None:
    try:
        fd = os.open(directory / STATE_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            return json.load(handle)
        except ValueError:
            return None


def adopt_obs_id(settings: Settings, tmp_parent: Path, product_dir: Path) -> Settings:
    """The settings with the interrupted run's OBS_ID when OBS_ID was not given (its default is a new unique id
    each time, so that a Kubernetes Job's next pod continues the same observation)."""
    if "obs_id" in settings.model_fields_set:
        return settings
    state = _read_state(state_directory(tmp_parent, product_dir, settings.file_prefix))
    if state is None or not isinstance(state.get("settings", {}).get("obs_id"), str):
        return settings
    return settings.model_copy(update={"obs_id": state["settings"]["obs_id"]})


def _write_file(path: Path, text: str) -> None:
    """Write `path` (new, no links followed) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class RunState:
    """An adopted or new state directory, locked by this run."""

    directory: Path
    lock_fd: int
    time_steps_done: int  # time steps [0, time_steps_done) are written for every channel
    resumed: bool

    def ms_path(self, name: str) -> Path:
        return self.directory / name

    def record(self, time_start: int, time_stop: int, chan_start: int, chan_stop: int) -> None:
        """Journal one block as written (call after the MS is flushed); fsync'ed before returning."""
        fd = os.open(self.directory / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        try:
            os.write(fd, f"{time_start} {time_stop} {chan_start} {chan_stop}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def start_over(self, *ms_names: str) -> None:
        """Forget what was written (an MS that cannot be opened again): an empty journal, none of the MSs named."""
        for name in ms_names:
            shutil.rmtree(self.directory / name, ignore_errors=True)
        empty = self.directory / (JOURNAL + ".new")
        empty.unlink(missing_ok=True)
        _write_file(empty, "")
        os.replace(empty, self.directory / JOURNAL)
        self.time_steps_done, self.resumed = 0, False

    def remove(self) -> None:
        """The run is complete: remove the state (lock file last, so it stays ours until then)."""
        for path in self.directory.iterdir():
            if path.name != ALIVE:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        os.unlink(self.directory / ALIVE)
        os.close(self.lock_fd)
        self.lock_fd = -1
        os.rmdir(self.directory)


def _time_steps_done(directory: Path, n_times: int, n_channels: int) -> int:
    """Time steps [0, T) covered for all channels by the journal's blocks (a torn last line is ignored)."""
    try:
        text = (directory / JOURNAL).read_text()
    except OSError:
        return 0
    covered = np.zeros(n_times + 1, dtype=np.int64)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            break
        t0, t1, c0, c1 = (int(p) for p in parts)
        if not (0 <= t0 < t1 <= n_times and 0 <= c0 < c1 <= n_channels):
            break
        covered[t0:t1] += c1 - c0
    full = np.flatnonzero(covered[:n_times] < n_channels)
    return int(full[0]) if len(full) else n_times


def _differences(saved: dict, wanted: dict) -> list[str]:
    return sorted(name.upper() for name in set(saved) | set(wanted) if saved.get(name) != wanted.get(name))


@contextmanager
def run_state(tmp_parent: Path, product_dir: Path, file_prefix: str, wanted: dict, ms_name: str, n_times: int,
              n_channels: int, restart: bool) -> Iterator[RunState]:
    """The run's state directory, adopted when an interrupted run with the same settings left one, else new.
    file_prefix: FILE_PREFIX (the directory's name); wanted: the run's defining_settings.

    Raises UserInputError when a live run holds it, or when it holds another settings' run and `restart`
    is false. The directory is kept when the block ends (by an exception, a signal or normally); call
    `RunState.remove` once the products are staged.
    """
    directory = state_directory(tmp_parent, product_dir, file_prefix)
    lock_fd = _take(directory)
    run = None
    try:
        state = _read_state(directory) if lock_fd >= 0 else None
        if lock_fd >= 0 and not restore(directory):
            logger.warning("resume: %s holds an MS whose DATA went into a tar being staged when its run stopped; "
                           "the MS is made again", directory)
            shutil.rmtree(directory / ms_name, ignore_errors=True)
        resumed = False
        if lock_fd >= 0 and state is not None and not restart:
            saved = state.get("settings", {})
            if saved != json.loads(json.dumps(wanted)):
                raise UserInputError("--restart", f"{directory} holds an interrupted run of {ms_name} with other settings "
                                     f"({', '.join(_differences(saved, wanted))} differ); run again with its settings to "
                                     "resume it, or add --restart to discard it and start over")
            resumed = (directory / ms_name).is_dir()
        if lock_fd >= 0 and not resumed:  # new, restarted, or a state without its MS: start afresh
            for path in directory.iterdir():
                if path.name != ALIVE:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        if lock_fd < 0:
            directory.mkdir(mode=0o700)
            lock_fd = livelock.open_lock_file(directory / ALIVE, create=True, exclusive=True)
            livelock.try_lock(lock_fd)
        if not resumed:
            _write_file(directory / STATE_FILE, json.dumps({"settings": wanted}, sort_keys=True))
            _write_file(directory / JOURNAL, "")
            done = 0
        else:
            done = _time_steps_done(directory, n_times, n_channels)
            # The journal from here on: the complete time steps in one line, then this run's blocks.
            compact = directory / (JOURNAL + ".new")
            compact.unlink(missing_ok=True)
            _write_file(compact, f"0 {done} 0 {n_channels}\n" if done else "")
            os.replace(compact, directory / JOURNAL)
            logger.info("resume: %s holds %d of %d time steps written by an interrupted run with the same settings; "
                        "continuing from there", directory, done, n_times)
        run = RunState(directory, lock_fd, done, resumed)
        yield run
    finally:
        if run is not None:
            lock_fd = run.lock_fd
        if lock_fd >= 0:
            os.close(lock_fd)


def sweep_abandoned(tmp_parent: Path, max_age_s: float = ABANDONED_AFTER_S) -> list[Path]:
    """Remove the states TMPDIR/srcnet-resume-* that no live run holds and nobody touched for `max_age_s`
    (their journal, state and MS directory all older); log each with its size; return those removed."""
    removed = []
    now = time.time()
    for directory in sorted(Path(tmp_parent).glob(f"{STATE_PREFIX}*")):
        if directory.is_symlink() or not directory.is_dir():
            continue
        newest = max((p.lstat().st_mtime for p in (directory, *directory.iterdir())), default=0.0)
        if now - newest < max_age_s or not livelock.is_dead(directory / ALIVE):
            continue
        size = sum(f.lstat().st_size for f in directory.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            removed.append(directory)
            logger.warning("removed %s (%.1f MiB): the resumable state of a run abandoned for over %.0f days",
                           directory, size / 2**20, max_age_s / 86400)
    return removed


def _take(directory: Path) -> int:
    """The locked fd of an existing state directory's ALIVE, or -1 when there is no directory.

    Raises UserInputError when the name is not a real directory of ours or a live run holds the lock.
    """
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return -1
    if not os.path.isdir(directory) or os.path.islink(directory) or info.st_uid != os.geteuid():
        raise UserInputError("TMPDIR", f"{directory} is a link or not a directory of this user; a run's resumable "
                             "state must be a real directory (remove it)")
    try:
        fd = livelock.open_lock_file(directory / ALIVE, create=True)
    except livelock.NotARegularFile:
        raise UserInputError("TMPDIR", f"{directory / ALIVE} is not a lock file (a link or other file planted there); "
                             "remove it") from None
    if not livelock.try_lock(fd):
        os.close(fd)
        raise UserInputError("FILE_PREFIX", f"a live run is writing {directory} (the same OUT_DIR, RUCIO_NAMESPACE and "
                             "FILE_PREFIX); wait for it to end or choose another FILE_PREFIX")
    return fd
