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
        self.generation = 0

    def add(self, target: Subscriber) -> None:
        """Subscribe ``target`` (idempotent)."""
        with self._lock:
            self._targets[_key(target)] = target

    def remove(self, target: Subscriber) -> bool:
        """Unsubscribe ``target``; returns whether it was subscribed."""
        with self._lock:
            return self._targets.pop(_key(target), None) is not None

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
