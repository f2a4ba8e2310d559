"""SIGTERM and SIGINT as an exception, so that a run stopped by Kubernetes (eviction, `kubectl
delete`, a node drain) or by Ctrl-C unwinds through every `finally` and context manager and
removes its scratch directory, partial files and claims.

Python runs signal handlers in the main thread between bytecodes: a signal that arrives inside a
long C call (a ducc0 gridding pass, a numba kernel) is acted on when that call returns. Whichever
thread the kernel hands the signal to, the handler runs in the main thread.

Every stop signal is acted on exactly once, whenever it comes while `stop_on_signals` is in effect:

- The handler raises Stopped wherever the main thread is. When that is a finalizer (a `__del__`
  run by the garbage collector, a weakref callback), CPython cannot raise there: it reports the
  exception as "ignored" and carries on. Our `sys.unraisablehook` sees such a Stopped and a
  short-lived thread sends the signal again to the main thread, every millisecond, until the handler
  has raised it in ordinary code (the handler never raises inside that hook, where it would be lost
  too). A real signal, not `_thread.interrupt_main`: it also ends a blocking wait of the main
  thread. Once Stopped is raised, further signals are ignored: a second SIGTERM must not interrupt
  the clean-up.
- Inside `deferred()` (a product and its sidecar renamed together) the handler only notes the
  signal; Stopped is raised as the block ends. This is done in Python, not with a signal mask: a
  mask is per thread, and with numba's or the writer's threads alive the kernel hands a signal
  blocked in the main thread to one of them, whose C handler wakes the main thread at once.
- A signal that comes once the command's work is complete (`work_complete()`: a run calls it when
  its products are staged; else when the block returns) does not undo it: it is logged, what is
  left (previews, removing the scratch) is not interrupted, and the command ends normally, exit 0.
  A failed exit would make Kubernetes retry a Job whose products are already in the staging area
  (the retry would refuse them as staged already). A signal acted on before then ends the command
  with 143 (SIGTERM) or 130 (SIGINT) and the one line of cli.main.

Outside `stop_on_signals` the default actions apply: before the CLI installs it nothing of a run
exists yet; after it restored the previous handlers (the process's last moments) everything is
done, and a signal then ends the process with its own status.
"""

from __future__ import annotations

import _thread
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RETRY_S = 0.001  # between two tries to raise a Stopped that a finalizer swallowed
logger = logging.getLogger("srcnet_sim")


class Stopped(BaseException):
    """Raised by SIGTERM or SIGINT (a BaseException: `except Exception` does not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code of a process ended by this signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@dataclass
class _Stop:
    """One `stop_on_signals` block: what its handler knows (set in the main thread; read by the retrying thread)."""

    active: bool = True  # the block runs: a signal raises Stopped
    received: int | None = None  # the first stop signal
    to_raise: bool = False  # received, and its Stopped not raised yet (deferred, or swallowed by a finalizer)
    deferring: int = 0  # depth of deferred() blocks
    main_thread_id: int = 0
    previous_hook: Callable[[object], object] = sys.__unraisablehook__
    lock: object = field(default_factory=_thread.allocate_lock)  # the retrying thread never signals a finished block


_current = _Stop(active=False)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop = _current
    if stop.received is None:
        stop.received, stop.to_raise = signum, True
    if stop.to_raise and stop.active and not stop.deferring and not _in_unraisable_hook(frame):
        stop.to_raise = False
        raise Stopped(stop.received)


def _in_unraisable_hook(frame: FrameType | None) -> bool:
    """Whether the handler interrupted our unraisable hook (an exception raised there would be lost)."""
    while frame is not None:
        if frame.f_code is _unraisable_hook.__code__:
            return True
        frame = frame.f_back
    return False


def _unraisable_hook(unraisable) -> None:
    stop = _current
    try:
        if isinstance(unraisable.exc_value, Stopped) and stop.active:
            stop.to_raise = True  # raised by the handler inside a finalizer, which dropped it: raise it again
        else:
            stop.previous_hook(unraisable)
    finally:
        if stop.to_raise and stop.active and not stop.deferring:  # (deferred() raises it itself)
            _thread.start_new_thread(_keep_trying, (stop,))


def _keep_trying(stop: _Stop) -> None:
    """Signal the main thread again until its handler raised the Stopped (or the block ended)."""
    while True:
        with stop.lock:
            if not (stop.active and stop.to_raise):
                return
            signal.pthread_kill(stop.main_thread_id, stop.received)
        time.sleep(RETRY_S)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into Stopped while the block runs (main thread only), then restore the handlers
    and `sys.unraisablehook`. A signal that comes after the block returned is logged and does not stop it."""
    global _current
    if threading.current_thread() is not threading.main_thread() or _current.active:
        yield
        return
    stop = _current = _Stop(main_thread_id=threading.main_thread().ident, previous_hook=sys.unraisablehook)
    sys.unraisablehook = _unraisable_hook
    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        try:
            work_complete()  # from here a signal is only noted (one may still raise here, waiting for the lock)
        finally:
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)
            sys.unraisablehook = stop.previous_hook
    if stop.to_raise:
        logger.warning("%s came after the work was complete; ending normally", signal.Signals(stop.received).name)


def work_complete() -> None:
    """The command's work is done (a run's products are staged): from here a stop signal is logged, not raised,
    and the command ends normally (see the module's docstring)."""
    stop = _current
    with stop.lock:
        stop.active = False


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back while the block runs (a few renames that belong together); a signal
    that came meanwhile raises Stopped as the block ends, in place of any exception of the block. Only
    the main thread's work is held back (the handler runs there); elsewhere, and outside
    `stop_on_signals`, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stop = _current
    stop.deferring += 1
    try:
        yield
    finally:
        stop.deferring -= 1
        if stop.to_raise and stop.active and not stop.deferring:
            stop.to_raise = False
            raise Stopped(stop.received)  # the signal wins over an exception of the block
