"""Membership events and the notifier thread that runs subscriber and watcher callbacks.

Callbacks run on one ``wind-notify-NODE`` thread per node, in the order the events happened,
never on the I/O thread: a slow callback delays other callbacks, not the network. A callback
that raises is logged and the others still run.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["NodeUp", "NodeDown", "Notifier"]

_log = structlog.get_logger("wind.runtime.events")


@dataclasses.dataclass(frozen=True)
class NodeUp:
    """A peer node became reachable: it answered our ping (first contact, or again after being
    down). A frame alone does not do it: the peer must be shown to hear us."""

    name: str


@dataclasses.dataclass(frozen=True)
class NodeDown:
    """A peer node became unreachable.

    Attributes:
        name: the peer.
        reason: ``"connection_closed"`` (its connection to us ended: its process is gone, or it
            declared us lost and dropped the connection), ``"heartbeat_timeout"`` (our pings
            went unanswered for ``interval * misses``: a partition either way, a frozen
            process, or this one was frozen), ``"node_stopped"`` (this node stopped) or
            ``"io_failed"`` (this node stopped because its I/O thread could not go on).
    """

    name: str
    reason: str


class Notifier:
    """A thread that runs queued callbacks one at a time."""

    def __init__(self, node: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Any] | None] = queue.SimpleQueue()
        self._node = node
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"wind-notify-{node}", daemon=True)
        self._thread.start()

    def post(self, callback: Callable[[Any], Any], arg: Any) -> None:
        """Run ``callback(arg)`` on the notifier thread (thread-safe, never blocks).

        Once the notifier is stopped the callback runs at once on the calling thread: a node
        that stopped still reports the exits of local actors watched through it.
        """
        if self._stopped:
            self._call(callback, arg)
        else:
            self._queue.put((callback, arg))

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        self._stopped = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
            while True:  # posted in the instant between the check in post() and the sentinel
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return
                if item is not None:
                    self._call(*item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._call(*item)

    def _call(self, callback: Callable[[Any], Any], arg: Any) -> None:
        try:
            callback(arg)
        except Exception:  # noqa: BLE001 - one broken callback must not stop the others
            _log.exception("callback failed", node=self._node, callback=repr(callback),
                           event=repr(arg))
