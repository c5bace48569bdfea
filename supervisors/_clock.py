"""Monotonic clocks: the real one, and a manual one that tests advance by hand."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "ManualClock", "MonotonicClock"]

Cancel = Callable[[], None]


class Clock(Protocol):
    """What a supervisor needs from time: now, and a way to act later."""

    def now(self) -> float:
        """Return seconds on a monotonic scale."""
        ...

    def call_later(self, delay: float, func: Callable[[], None]) -> Cancel:
        """Run ``func`` (which must not block) once ``delay`` seconds have passed.

        Returns:
            A function that cancels the call if it has not run yet.
        """
        ...


class MonotonicClock:
    """``time.monotonic`` plus ``threading.Timer`` (daemon) for delayed calls."""

    def now(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def call_later(self, delay: float, func: Callable[[], None]) -> Cancel:
        """Run ``func`` on a daemon timer thread after ``delay`` seconds."""
        timer = threading.Timer(delay, func)
        timer.daemon = True
        timer.start()
        return timer.cancel


class ManualClock:
    """A clock that moves only when told to, for instant, deterministic tests.

    Delayed calls run inside :meth:`advance`, in the thread calling it, in
    deadline order.

    Args:
        start: the initial reading.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._pending: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()

    def now(self) -> float:
        """Return the current reading."""
        with self._lock:
            return self._now

    def call_later(self, delay: float, func: Callable[[], None]) -> Cancel:
        """Schedule ``func`` for when the clock has been advanced ``delay`` seconds."""
        with self._lock:
            seq = next(self._seq)
            heapq.heappush(self._pending, (self._now + max(0.0, delay), seq, func))

        def cancel() -> None:
            with self._lock:
                self._cancelled.add(seq)

        return cancel

    def advance(self, seconds: float) -> None:
        """Move the clock forward and run every delayed call that became due.

        Args:
            seconds: how far to move; must not be negative.
        """
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back; got {seconds!r}, allowed: >= 0")
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._pending or self._pending[0][0] > target:
                    self._now = target
                    return
                when, seq, func = heapq.heappop(self._pending)
                self._now = max(self._now, when)
                skip = seq in self._cancelled
                self._cancelled.discard(seq)
            if not skip:
                func()
