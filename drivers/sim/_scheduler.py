"""One timer thread per process for the simulator's scheduled faults (crash after N seconds).

A thread per VM would not scale to a simulated data centre; one heap does.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["schedule"]

_log = structlog.get_logger("wind.drivers.sim")
_cond = threading.Condition()
_heap: list[tuple[float, int, Callable[[], None]]] = []
_seq = itertools.count()
_thread: threading.Thread | None = None


def schedule(delay: float, action: Callable[[], None]) -> None:
    """Run ``action()`` on the scheduler thread after ``delay`` seconds.

    The action must not block for long; an exception it raises is logged.
    """
    global _thread
    with _cond:
        heapq.heappush(_heap, (time.monotonic() + delay, next(_seq), action))
        if _thread is None:
            _thread = threading.Thread(target=_run, name="wind-sim-scheduler", daemon=True)
            _thread.start()
        _cond.notify()


def _run() -> None:
    while True:
        with _cond:
            while not _heap or _heap[0][0] > time.monotonic():
                _cond.wait(None if not _heap else max(0.0, _heap[0][0] - time.monotonic()))
            _, _, action = heapq.heappop(_heap)
        try:
            action()
        except Exception:  # keep the one scheduler alive for every other hypervisor
            _log.exception("sim.scheduled_action_failed")
