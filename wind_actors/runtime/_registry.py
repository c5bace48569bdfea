"""The node's name registry: local actors reachable as ``name@node`` (thread-safe).

Dead entries are dropped when looked up, so a crashed actor's name can be taken again.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka

from supervisors import has_exited
from wind_actors.errors import NodeError

from ._authz import OPEN, Access

__all__ = ["Registry"]


class Registry:
    """Names to local ``pykka.ActorRef`` values of one node.

    Args:
        node: the node's name, for error context.
    """

    def __init__(self, node: str) -> None:
        self._node = node
        self._names: dict[str, pykka.ActorRef[Any]] = {}
        self._access: dict[str, Access] = {}
        self._lock = threading.Lock()

    def register(self, name: str, actor_ref: pykka.ActorRef[Any], access: Access = OPEN) -> None:
        """Bind ``name`` to ``actor_ref``; ``access`` says which remote roles may reach it.

        Raises:
            NodeError: the name is empty, holds ``@``, or is taken by another live actor.
        """
        if not name or "@" in name:
            raise NodeError(f"actor name {name!r} is not allowed; use a non-empty name without @",
                            node=self._node)
        with self._lock:
            current = self._names.get(name)
            # has_exited, not is_alive: a crashed actor's thread may still be finishing when its
            # supervisor starts the successor, which must be able to take the name over.
            if current is not None and current is not actor_ref and not has_exited(current):
                raise NodeError(f"name {name!r} is already registered on {self._node}",
                                node=self._node, actor=name)
            self._names[name] = actor_ref
            if access is OPEN:
                self._access.pop(name, None)
            else:
                self._access[name] = access

    def access_of(self, name: str) -> Access:
        """Who may reach the actor registered as ``name`` (see :class:`~._authz.Access`)."""
        return self._access.get(name, OPEN)

    def unregister(self, name: str, actor_ref: pykka.ActorRef[Any] | None = None) -> bool:
        """Forget a name (only if it is bound to ``actor_ref``, when given); returns whether it was."""
        with self._lock:
            if actor_ref is not None and self._names.get(name) is not actor_ref:
                return False
            self._access.pop(name, None)
            return self._names.pop(name, None) is not None

    def whereis(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live actor registered as ``name``, or None."""
        actor = self._names.get(name)
        if actor is None:
            return None
        if has_exited(actor):
            with self._lock:
                if self._names.get(name) is actor:
                    del self._names[name]
            return None
        return actor

    def name_of(self, actor_ref: pykka.ActorRef[Any]) -> str | None:
        """The name ``actor_ref`` is registered under, if any."""
        with self._lock:
            for name, registered in self._names.items():
                if registered is actor_ref:
                    return name
        return None
