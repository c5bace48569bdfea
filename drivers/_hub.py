"""Subscribers of one endpoint's driver actor; outlives actor restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from ._events import Inventory, VMEvent

__all__ = ["Subscribers", "Subscriber"]

Subscriber = pykka.ActorRef[Any] | Callable[[VMEvent | Inventory], None]

_log = structlog.get_logger("wind.drivers.actor")


class Subscribers:
    """The set of ActorRefs and callables that receive an endpoint's events.

    It is created outside the driver actor and handed to every incarnation of
    it, so a restart keeps the subscriptions; ``generation`` counts
    (re)connects so subscribers can tell a fresh :class:`Inventory` from an
    old one.

    An ActorRef receives each message by ``tell``; a callable is called on the
    thread that produced the message (the driver's event thread, or the driver
    actor's thread for inventories) and must not block. A dead ActorRef is
    dropped on the first failed delivery.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[Any, Subscriber] = {}
        self._listener: Callable[[bool], None] | None = None
        self.generation = 0

    def add(self, target: Subscriber) -> None:
        """Subscribe ``target`` (idempotent)."""
        with self._lock:
            first = not self._targets
            self._targets[_key(target)] = target
            listener = self._listener if first else None
        if listener is not None:
            listener(True)

    def remove(self, target: Subscriber) -> bool:
        """Unsubscribe ``target``; returns whether it was subscribed."""
        with self._lock:
            removed = self._targets.pop(_key(target), None) is not None
            listener = self._listener if removed and not self._targets else None
        if listener is not None:
            listener(False)
        return removed

    def listen(self, listener: Callable[[bool], None] | None) -> None:
        """Call ``listener(True)`` when the first subscriber arrives and ``listener(False)`` when the last leaves.

        One listener at a time (the current incarnation of the driver actor,
        which watches the backend's events only while someone listens);
        ``None`` removes it. It runs on the thread that added or removed the
        subscriber, after the change, and must not block.
        """
        with self._lock:
            self._listener = listener

    def unlisten(self, listener: Callable[[bool], None]) -> None:
        """Remove ``listener`` if it is still the one listening (an old incarnation must not remove a new one's)."""
        with self._lock:
            if self._listener == listener:
                self._listener = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._targets)

    def next_generation(self) -> int:
        """Count one more (re)connect and return the new generation."""
        with self._lock:
            self.generation += 1
            return self.generation

    def send(self, message: VMEvent | Inventory, only: Subscriber | None = None) -> None:
        """Deliver ``message`` to every subscriber (or just ``only``)."""
        with self._lock:
            targets = [only] if only is not None else list(self._targets.values())
        for target in targets:
            deliver(target, message, self)


def _key(target: Subscriber) -> Any:
    return target.actor_urn if isinstance(target, pykka.ActorRef) else target


def deliver(target: Subscriber, message: Any, hub: Subscribers | None = None) -> None:
    """Send one message to one subscriber, dropping it from ``hub`` if it is dead."""
    if isinstance(target, pykka.ActorRef):
        try:
            target.tell(message)
        except pykka.ActorDeadError:
            if hub is not None:
                hub.remove(target)
        return
    try:
        target(message)
    except Exception:  # one broken subscriber must not starve the others
        _log.exception("driver.subscriber_failed", subscriber=repr(target))
