"""The MSv2 writer (vis.writer.MeasurementSetWriter) in a child process of its own.

python-casacore holds the GIL for the whole of a `putcol` and a `flush` (a block's copy into casacore's tiles and
its writes: a second or more for a block of 100+ MB), so a writer thread in the run's process stops the
simulation's Python and its numba calls for as long: writing and computing took turns instead of overlapping.
The child process runs casacore; the run's writer thread only copies a block into shared memory and waits for
the child's answer on a socket, without the GIL.

- Arrays made by `shared_empty` (run.blocks.compute_block makes a block's visibilities, model and flags so) live
  in a shared-memory file (memfd; not /dev/shm, which a container may limit to 64 MiB) of their own: its
  descriptor goes to the child, which maps the same pages (no copy, no second block in memory). Other arrays
  (UVW, times; a Dask worker's results, which arrive pickled) are copied into one memfd of the writer's, grown
  to the largest block. Requests and answers are small pickles through a socket pair.
- The child ignores SIGINT and SIGTERM: the run stops it (fs.stopping) after the block being written, as it stops
  a writer thread. It is killed with its parent (PR_SET_PDEATHSIG), so a killed run leaves no writer behind to
  touch the MS that the next run resumes. The parent thread that starts it must outlive it (the run's main
  thread does).
- Its errors come back as the same exceptions (a casacore error is a RuntimeError); a child that dies (casacore
  aborts on some write errors) is a RuntimeError naming the MS and the exit status.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from pathlib import Path

import numpy as np

ALIGN = 64  # bytes: each array's offset in the shared memory
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SharedArray:
    """An array in shared memory: `offset` bytes from the start of the writer's memfd (source -1) or of the
    source-th descriptor sent with the request; `shape`, `dtype` (NumPy's string)."""

    offset: int
    shape: tuple[int, ...]
    dtype: str
    source: int = -1


# memfds of arrays gone, kept for the next shared_empty of the same size: a new memfd's pages are faulted in and
# zeroed one by one (~1 GB/s on a VM), a kept one's are mapped at once (MAP_POPULATE). At most POOL_SIZE kept: the
# blocks a run holds at once (sizing.RESULTS_HELD + 1); release_shared_memory() frees them.
POOL_SIZE = 3
_pool: list[tuple[int, int]] = []  # (fd, size)


class _SharedMapping(mmap.mmap):
    """The mapping of a memfd made by shared_empty; `fd` stays open while the mapping lives."""

    fd: int


def shared_empty(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """np.empty(shape, dtype) in a memfd of its own, which MeasurementSetWriterProcess hands to its child without
    a copy (elsewhere an ordinary array)."""
    count = int(np.prod(shape))
    size = -(-max(count * np.dtype(dtype).itemsize, 1) // mmap.PAGESIZE) * mmap.PAGESIZE
    kept = next((i for i, (_, kept_size) in enumerate(_pool) if kept_size == size), None)
    fd = _pool.pop(kept)[0] if kept is not None else os.memfd_create("srcnet-sim-block")
    try:
        if kept is None:
            os.ftruncate(fd, size)
        mapping = _SharedMapping(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
    except BaseException:
        os.close(fd)
        raise
    mapping.fd = fd
    weakref.finalize(mapping, _keep, fd, size)
    return np.frombuffer(mapping, dtype=dtype, count=count).reshape(shape)


def _keep(fd: int, size: int) -> None:
    """A shared_empty array is gone: its memfd into the pool, or closed where the pool is full."""
    if len(_pool) < POOL_SIZE:
        _pool.append((fd, size))
    else:
        os.close(fd)


def release_shared_memory() -> None:
    """Free the memfds kept for reuse (a run calls it once its blocks are written)."""
    while _pool:
        os.close(_pool.pop()[0])


def _memfd_place(array: np.ndarray) -> tuple[int, int] | None:
    """(descriptor, byte offset) of a C-contiguous array made by shared_empty (or a view of it), else None."""
    owner = array
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    if not isinstance(owner, _SharedMapping) or not array.flags.c_contiguous:
        return None
    start = np.frombuffer(owner, dtype=np.uint8, count=1).__array_interface__["data"][0]
    return owner.fd, array.__array_interface__["data"][0] - start


class MeasurementSetWriterProcess:
    """MeasurementSetWriter.reopen(path, direct_data=True) run by a child process: put_rows, flush, close and
    n_rows as there.

    Raises what the child's MeasurementSetWriter raises (reopening an MS that cannot be read: a RuntimeError)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        ours, theirs = socket.socketpair()
        self._socket = ours  # descriptors go through it (sendmsg), the requests through its Connection
        self._memory_fd = os.memfd_create("srcnet-sim-ms-writer")
        self._mapping: mmap.mmap | None = None
        package_root = str(Path(__file__).resolve().parents[2])  # where this srcnet_sim is, whatever sys.path says
        search = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), str(self._memory_fd), str(os.getpid()),
                 str(self.path)], pass_fds=(theirs.fileno(), self._memory_fd), stdin=subprocess.DEVNULL,
                stdout=2, env={**os.environ, "PYTHONPATH": search})  # casacore's notes to stderr (fd 2)
        except BaseException:
            ours.close()
            os.close(self._memory_fd)
            raise
        finally:
            theirs.close()
        self._connection = Connection(os.dup(ours.fileno()))
        try:
            self._n_rows = self._call(None)
        except BaseException:
            self._end()
            raise

    def __enter__(self) -> "MeasurementSetWriterProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    @property
    def n_rows(self) -> int:
        """Rows the main table has (of the last put_rows, or of the MS when opened)."""
        return self._n_rows

    def put_rows(self, start_row: int, times_s: np.ndarray, interval_s: float, ant1: np.ndarray, ant2: np.ndarray,
                 uvw_m: np.ndarray, data: np.ndarray, sigma: np.ndarray, chan_start: int = 0,
                 flag: np.ndarray | None = None, model: np.ndarray | None = None) -> None:
        """MeasurementSetWriter.put_rows (arguments, shapes and units as there), in the child."""
        arrays = {"times_s": np.asarray(times_s, dtype=np.float64), "ant1": np.asarray(ant1), "ant2": np.asarray(ant2),
                  "uvw_m": np.asarray(uvw_m), "data": np.asarray(data), "sigma": np.asarray(sigma)}
        arrays.update({name: np.asarray(value) for name, value in (("flag", flag), ("model", model)) if value is not None})
        shared, descriptors, size = {}, [], 0
        for name, array in arrays.items():
            place = _memfd_place(array)
            if place is not None:  # the child maps its pages
                shared[name] = SharedArray(place[1], array.shape, array.dtype.str, len(descriptors))
                descriptors.append(place[0])
            else:
                shared[name] = SharedArray(size, array.shape, array.dtype.str)
                size += -(-array.nbytes // ALIGN) * ALIGN
        mapping = self._memory(size)
        for name, array in arrays.items():
            place = shared[name]
            if place.source < 0:
                np.copyto(np.ndarray(place.shape, place.dtype, buffer=mapping, offset=place.offset), array)
        self._n_rows = self._call(("put", len(mapping), len(descriptors), {"start_row": start_row,
                                   "interval_s": interval_s, "chan_start": chan_start, **shared}), descriptors)

    def flush(self) -> None:
        """MeasurementSetWriter.flush in the child: casacore's buffers written, the main table's files fsynced."""
        self._call(("flush",))

    def close(self) -> None:
        """Flush and close the MS and end the child (again: nothing)."""
        if self._process is None:
            return
        try:
            self._call(("close",))
        finally:
            self._end()

    def _memory(self, size: int) -> mmap.mmap:
        """The shared memory, grown to at least `size` bytes (never shrunk: blocks are alike but the last)."""
        if self._mapping is None or len(self._mapping) < size:
            if self._mapping is not None:
                self._mapping.close()
            os.ftruncate(self._memory_fd, max(size, mmap.PAGESIZE))
            self._mapping = mmap.mmap(self._memory_fd, max(size, mmap.PAGESIZE))
        return self._mapping

    def _call(self, request: tuple | None, descriptors: list[int] = ()) -> object:
        """Send `request` (None: only wait for the child's first answer) and the open files `descriptors`, and
        return the child's value, or raise its exception; a RuntimeError where the child is gone."""
        try:
            if request is not None:
                self._connection.send(request)
            if descriptors:
                sendfds(self._socket, list(descriptors))
            status, value = self._connection.recv()
        except (EOFError, OSError):
            code = self._process.wait()
            reason = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            raise RuntimeError(f"the MeasurementSet writer process of {self.path} ended ({reason})") from None
        if status == "error":
            raise value
        return value

    def _end(self) -> None:
        """Close this side and wait for the child (it ends on its own once the socket closes)."""
        self._connection.close()
        self._socket.close()
        self._process.wait()
        self._process = None
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None
        os.close(self._memory_fd)


def serve(connection: Connection, sock: socket.socket, memory_fd: int, path: Path) -> None:
    """The child's loop: open the MS, answer each request (put, flush, close) until close or the socket closes
    (the parent gone: then quietly)."""
    from srcnet_sim.vis.writer import MeasurementSetWriter

    try:
        try:
            writer = MeasurementSetWriter.reopen(path, direct_data=True)
        except Exception as exc:
            _answer(connection, "error", exc)
            return
        try:
            _answer(connection, "ok", writer.n_rows)
            _serve_requests(connection, sock, memory_fd, writer)
        finally:
            writer.close()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return


def _serve_requests(connection: Connection, sock: socket.socket, memory_fd: int, writer) -> None:
    """Answer put, flush and close requests until close (or EOFError when the socket closes)."""
    mapping: mmap.mmap | None = None
    while True:
        request = connection.recv()
        try:
            if request[0] == "put":
                _, size, n_descriptors, arguments = request
                sources = [_mapped(fd) for fd in (recvfds(sock, n_descriptors) if n_descriptors else [])]
                if mapping is None or len(mapping) != size:
                    if mapping is not None:
                        mapping.close()
                    mapping = mmap.mmap(memory_fd, size)
                try:
                    writer.put_rows(**{name: (np.ndarray(value.shape, value.dtype, offset=value.offset,
                                                         buffer=mapping if value.source < 0 else sources[value.source])
                                              if isinstance(value, SharedArray) else value)
                                       for name, value in arguments.items()})
                finally:
                    for source in sources:
                        source.close()
                value = writer.n_rows
            elif request[0] == "flush":
                writer.flush()
                value = None
            else:
                writer.close()
                _answer(connection, "ok", None)
                return
        except Exception as exc:
            _answer(connection, "error", exc)
            continue
        _answer(connection, "ok", value)


def _mapped(fd: int) -> mmap.mmap:
    """The whole of the memfd `fd` (received from the parent) mapped; the descriptor closed."""
    try:
        return mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _answer(connection: Connection, status: str, value: object) -> None:
    """Send (status, value); an exception that does not pickle goes as a RuntimeError with its text."""
    try:
        connection.send((status, value))
    except (pickle.PicklingError, TypeError, AttributeError):
        connection.send((status, RuntimeError(f"{type(value).__name__}: {value}")))


def _main(argv: list[str]) -> None:
    """python -m srcnet_sim.vis.writer_process SOCKET_FD MEMORY_FD PARENT_PID MS_PATH"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    socket_fd, memory_fd, parent = int(argv[0]), int(argv[1]), int(argv[2])
    if os.getppid() != parent:  # the parent died before prctl
        return
    from srcnet_sim.vis import writer_process  # this module by its own name: the parent pickles its SharedArray

    writer_process.serve(Connection(socket_fd), socket.socket(fileno=os.dup(socket_fd)), memory_fd, Path(argv[3]))


if __name__ == "__main__":
    _main(sys.argv[1:])
