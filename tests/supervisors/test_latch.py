"""Latch: the one-way flag actors use for "stopped" and "started" instead of threading.Event."""

from __future__ import annotations

import threading

from supervisors._latch import Latch


def test_a_latch_starts_clear_times_out_and_once_set_stays_set():
    latch = Latch()
    assert not latch.is_set()
    assert latch.wait(0.01) is False
    latch.set()
    latch.set()  # a second set does nothing
    assert latch.is_set() and latch.wait(0) and latch.wait()


def test_every_waiter_wakes_when_many_threads_set_it_at_once():
    latch, woke = Latch(), []
    waiters = [threading.Thread(target=lambda: woke.append(latch.wait(10))) for _ in range(8)]
    setters = [threading.Thread(target=latch.set) for _ in range(8)]
    for t in waiters + setters:
        t.start()
    for t in waiters + setters:
        t.join(10)
    assert woke == [True] * 8 and latch.is_set()
    assert latch.wait(0)  # still passable after all the waiters went through
