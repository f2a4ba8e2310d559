"""stopping.py in this process, with real signals sent to it at chosen moments: a signal is acted on once
wherever it lands (a finalizer, our unraisable hook, a deferred block, with other threads alive)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import pytest

from srcnet_sim.fs.stopping import Stopped, deferred, stop_on_signals, work_complete

WAIT_S = 10.0  # far longer than a stop takes: the block ending by itself means the signal was lost


def signal_main_thread(stop_signal: int = signal.SIGTERM) -> None:
    """Send a signal to this thread (thread-directed: it is delivered before the call returns), then run some
    bytecodes, so that Python's handler runs right here."""
    signal.pthread_kill(threading.main_thread().ident, stop_signal)
    sum(range(100))


def wait() -> None:
    """Ordinary work the signal must interrupt."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.01)


class SignalledWhileFinalized:
    """The signal's handler runs inside __del__, where CPython drops any exception (as "Exception ignored in")."""

    def __del__(self) -> None:
        signal_main_thread()


@pytest.fixture
def other_thread():
    """A live thread that does not block the stop signals (as numba's and the writer's threads)."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait, daemon=True)
    thread.start()
    yield thread
    done.set()
    thread.join()


def test_a_stop_swallowed_by_a_finalizer_is_raised_again_in_the_work(capfd):
    events = []
    started = time.monotonic()
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            SignalledWhileFinalized()  # finalized at once (reference count)
            events.append("after the finalizer")
            wait()
            events.append("waited")  # the old handler, lost in __del__, let the work run to its end
    assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
    assert events == ["after the finalizer"] and time.monotonic() - started < WAIT_S / 2
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_signal_that_lands_in_the_unraisable_hook_is_raised_after_it(monkeypatch):
    """A fresh SIGINT while an unrelated finalizer error is reported: the hook reports it and the SIGINT stops the
    work after the hook (an exception raised inside the hook would be lost)."""
    reported = []

    def previous_hook(unraisable) -> None:
        signal_main_thread(signal.SIGINT)
        reported.append(type(unraisable.exc_value).__name__)

    class FailsWhenFinalized:
        def __del__(self) -> None:
            raise ValueError("a finalizer's own error")

    monkeypatch.setattr(sys, "unraisablehook", previous_hook)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            FailsWhenFinalized()
            wait()
    assert stopped.value.signum == signal.SIGINT and reported == ["ValueError"]
    assert sys.unraisablehook is previous_hook


def test_a_signal_in_a_deferred_block_waits_for_its_end_though_other_threads_could_take_it(other_thread):
    """A signal mask is per thread: the kernel gave a signal blocked in the main thread to another thread, whose C
    handler woke the main thread's Python handler inside the block. The block now always ends first."""
    events = []
    with pytest.raises(Stopped):
        with stop_on_signals():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)  # process-directed: any thread may take it
                time.sleep(0.05)
                events.append("block ended")
            events.append("after the block")
    assert events == ["block ended"]


def test_a_signal_in_a_deferred_block_wins_over_its_exception():
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            with deferred():
                signal_main_thread()
                raise FileExistsError("the block's own failure")
    assert isinstance(stopped.value.__context__, FileExistsError)
    with stop_on_signals(), pytest.raises(FileExistsError):  # without a signal the exception goes on
        with deferred():
            raise FileExistsError("the block's own failure")


def test_a_second_signal_does_not_interrupt_the_clean_up():
    cleaned = []
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            try:
                signal_main_thread(signal.SIGTERM)
                wait()
            finally:
                signal_main_thread(signal.SIGINT)
                time.sleep(0.05)
                cleaned.append(True)
    assert stopped.value.signum == signal.SIGTERM and cleaned == [True]


def test_the_handlers_are_restored_and_a_later_block_starts_afresh():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), sys.unraisablehook
    with pytest.raises(Stopped):
        with stop_on_signals():
            signal_main_thread()
            wait()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), sys.unraisablehook) == before
    with stop_on_signals():  # the signal of the first block is not remembered
        time.sleep(0.01)
    with pytest.raises(Stopped):
        with stop_on_signals():
            signal_main_thread(signal.SIGINT)
            wait()


def test_a_signal_while_publishing_leaves_no_product_without_its_sidecar(tmp_path, monkeypatch):
    """SIGTERM during the data's rename, and the sidecar's name taken meanwhile (a writer without claims): the data
    is taken back out before the stop, so the ingestor never sees it without its .meta."""
    from srcnet_sim.products import staging

    private = tmp_path / "private"
    private.mkdir()
    final = tmp_path / "x.fits"
    item = staging.prepare(private, final, staging.text("ours"), lambda path, size: {"name": "x.fits"})
    rename = staging.rename_noreplace

    def rename_then_signal(source, target):
        rename(source, target)
        if target == final:
            staging.meta_path(final).write_text("{}")
            signal_main_thread()

    monkeypatch.setattr(staging, "rename_noreplace", rename_then_signal)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            staging.publish(item, overwrite=False)
    assert "appeared while this run held its claim" in str(stopped.value.__context__)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private", "x.fits.meta"]
    assert item.data.read_text() == "ours"


def test_a_signal_once_the_work_is_complete_is_logged_and_the_block_ends_normally():
    """A run calls work_complete() once its products are staged: an eviction then must not fail the Job (a retry
    would refuse the staged products), nor interrupt the clean-up."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("srcnet_sim")
    logger.addHandler(handler)
    try:
        with stop_on_signals():
            work_complete()
            signal_main_thread()
            time.sleep(0.05)
            cleaned_up = True
    finally:
        logger.removeHandler(handler)
    assert cleaned_up
    assert [r.getMessage() for r in records] == ["SIGTERM came after the work was complete; ending normally"]
