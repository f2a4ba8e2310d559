"""Write-behind: the MS writer thread that overlaps writing step n with predicting step n + 1."""

from __future__ import annotations

import threading
import time

import pytest

from srcnet_sim.run.overlap import write_behind


def test_items_are_consumed_in_order_in_another_thread():
    seen, threads = [], set()

    def consume(item):
        threads.add(threading.current_thread().name)
        seen.append(item)

    write_behind(iter(range(50)), consume)
    assert seen == list(range(50))
    assert threads == {"write-behind"}


def test_producer_runs_at_most_depth_plus_one_items_ahead():
    produced, consumed = [], []
    gate = threading.Event()
    lead = []

    def items():
        for i in range(20):
            produced.append(i)
            lead.append(len(produced) - len(consumed))
            yield i

    def consume(item):
        if item == 0:
            gate.wait(0.5)  # a slow first write: the producer must block, not run ahead
        time.sleep(0.001)
        consumed.append(item)

    write_behind(items(), consume, depth=1)
    assert consumed == list(range(20))
    # One item being written, one waiting in the queue, one just produced.
    assert max(lead) <= 3


def test_a_writer_failure_stops_the_producer_and_is_raised():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    def consume(item):
        if item == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_behind(items(), consume)
    assert len(produced) < 10
    assert not any(t.name == "write-behind" for t in threading.enumerate())


def test_a_producer_failure_is_raised_and_the_writer_ends():
    consumed = []

    def items():
        yield 1
        yield 2
        raise ValueError("predictor broke")

    with pytest.raises(ValueError, match="predictor broke"):
        write_behind(items(), consumed.append)
    assert consumed == [1, 2][:len(consumed)]  # items still queued when the producer failed are dropped
    assert not any(t.name == "write-behind" for t in threading.enumerate())
