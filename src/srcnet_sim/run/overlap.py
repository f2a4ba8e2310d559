"""Write-behind: consume items in a second thread while the next ones are produced.

The predictor (GPU kernels and copies, or numba threads, all outside the GIL) makes step n + 1 while a
writer thread writes step n to the MeasurementSet (through the writer's own process, vis.writer_process, as
casacore keeps the GIL while it writes). At most `depth` items wait in between, so memory
stays bounded whatever the number of steps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def write_behind(items: Iterable[T], consume: Callable[[T], None], depth: int = 1) -> None:
    """Call consume(item) for every item, in order, in a writer thread, while `items` produces the next ones.

    An exception in either side stops both and is raised here (the producer's first); the writer
    thread has ended when this returns.
    """
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        while True:
            item = waiting.get()
            if item is _DONE or stop.is_set():
                return
            try:
                consume(item)
            except BaseException as exc:  # handed to the producer's thread, which raises it
                failure.append(exc)
                stop.set()
                return

    def put(item: object) -> bool:
        """Queue item unless the writer stopped; False when it did."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    thread = threading.Thread(target=writer, name="write-behind", daemon=True)
    thread.start()
    try:
        for item in items:
            if not put(item):
                break
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            put(_DONE)
        else:
            try:
                waiting.put_nowait(_DONE)  # wake a writer waiting on an empty queue
            except queue.Full:
                pass
        thread.join()
    if failure:
        raise failure[0]
