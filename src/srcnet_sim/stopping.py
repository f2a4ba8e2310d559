"""SIGTERM and SIGINT as an exception, so that a run stopped by Kubernetes (eviction, `kubectl
delete`, a node drain) or by Ctrl-C unwinds through every `finally` and context manager and
removes its scratch directory, partial files and claims.

Python runs signal handlers in the main thread between bytecodes: a signal that arrives inside a
long C call (a ducc0 gridding pass) is acted on when that call returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


def _raise_stopped(signum: int, frame: object) -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into Stopped while the block runs (main thread only), then restore the handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back while the block runs (a few renames that belong together); a signal
    that came meanwhile is acted on right after it."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
