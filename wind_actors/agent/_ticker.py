"""Ticker: tells an actor a message at a fixed interval, from one daemon thread."""

from __future__ import annotations

import threading
from typing import Any

import pykka

__all__ = ["Ticker"]


class Ticker:
    """Tell ``message`` to ``ref`` every ``interval`` seconds until stopped or the actor dies.

    The thread only enqueues; the actor does the work on its own thread, so a tick never runs
    concurrently with the actor's other messages.

    Args:
        ref: the actor to tick.
        interval: seconds between ticks.
        message: what to tell it.
        name: the thread's name.
    """

    def __init__(self, ref: pykka.ActorRef[Any], interval: float, message: Any, *, name: str) -> None:
        self._ref = ref
        self._interval = interval
        self._message = message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._ref.tell(self._message)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        """Stop ticking (idempotent; returns at once)."""
        self._stop.set()
