"""The thread that polls a cloud endpoint for lifecycle events."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from ..errors import ConnectionLost, DriverError

__all__ = ["Poller"]

_log = structlog.get_logger("wind.drivers.cloud")


class Poller:
    """Calls ``poll()`` every ``interval`` seconds on its own daemon thread.

    A :class:`ConnectionLost` from ``poll`` is passed to ``on_lost`` once per
    outage (the driver actor then restarts the driver); other driver errors
    are logged and polling goes on.

    Args:
        name: endpoint name (thread name and logs).
        interval: seconds between polls.
        poll: one observation; runs on the poller thread.
        on_lost: called on the poller thread when the connection is lost.
    """

    def __init__(self, name: str, interval: float, poll: Callable[[], None],
                 on_lost: Callable[[ConnectionLost], None]) -> None:
        self._name = name
        self._interval = interval
        self._poll = poll
        self._on_lost = on_lost
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"wind-cloud-poll-{name}", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait for the thread (a poll in flight finishes first)."""
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        lost = False
        while not self._stopping.wait(self._interval):
            try:
                self._poll()
                lost = False
            except ConnectionLost as exc:
                if not lost:
                    lost = True
                    _log.warning("cloud.poll_connection_lost", driver=self._name, error=str(exc))
                    self._on_lost(exc)
            except DriverError as exc:
                _log.warning("cloud.poll_failed", driver=self._name, error=str(exc))
            except Exception:  # never let the poller die silently
                _log.exception("cloud.poll_crashed", driver=self._name)
