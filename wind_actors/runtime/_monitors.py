"""Bookkeeping of monitors that cross nodes (plain, thread-safe, no I/O).

Outgoing: this node watches a remote actor; the wire id travels in MONITOR/DOWN envelopes and
the public id (``"rmon-N"``) is what ``Node.monitor`` returns and ``Down.monitor_id`` carries.
Incoming: a peer watches a local actor; we hold the local ``supervisors`` monitor id.

Wire ids are random 63-bit numbers and a DOWN is taken only from the node that holds the watched
actor (:meth:`MonitorTable.pop_out_from`), so no other peer can fire or cancel a monitor.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any, NamedTuple

__all__ = ["MonitorTable", "OutMonitor"]


class OutMonitor(NamedTuple):
    """A monitor this node set on an actor of ``peer``."""

    public_id: str
    wire_id: int
    peer: str
    ref: Any
    watcher: Any


class MonitorTable:
    """Outgoing remote monitors, incoming remote monitors and local ones made through a ref."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out: dict[int, OutMonitor] = {}
        self._incoming: dict[tuple[str, int], str] = {}
        self._local: dict[str, str] = {}

    def new_public_id(self) -> tuple[str, int]:
        """A fresh ``("rmon-N", N)`` pair (N random, not used by an outgoing monitor)."""
        n = secrets.randbits(63)
        while n in self._out:
            n = secrets.randbits(63)
        return f"rmon-{n}", n

    def add_out(self, peer: str, ref: Any, watcher: Any) -> OutMonitor:
        """Record an outgoing monitor and return it."""
        with self._lock:
            public_id, wire_id = self.new_public_id()
            entry = OutMonitor(public_id, wire_id, peer, ref, watcher)
            self._out[wire_id] = entry
        return entry

    def pop_out_from(self, wire_id: int, peer: str) -> tuple[OutMonitor | None, bool]:
        """Remove and return the outgoing monitor ``wire_id`` if it watches an actor of ``peer``.

        Returns:
            ``(entry, False)``; ``(None, False)`` when there is none; ``(None, True)`` when it
            watches another node's actor (it stays).
        """
        with self._lock:
            entry = self._out.get(wire_id)
            if entry is None:
                return None, False
            if entry.peer != peer:
                return None, True
            del self._out[wire_id]
            return entry, False

    def pop_out(self, wire_id: int) -> OutMonitor | None:
        """Remove and return the outgoing monitor with this wire id."""
        with self._lock:
            return self._out.pop(wire_id, None)

    def pop_out_of_peer(self, peer: str) -> list[OutMonitor]:
        """Remove and return every outgoing monitor on ``peer``'s actors."""
        with self._lock:
            gone = [m for m in self._out.values() if m.peer == peer]
            for m in gone:
                del self._out[m.wire_id]
        return gone

    def add_local(self, public_id: str, supervisors_id: str) -> None:
        """Remember the supervisors monitor behind a public id for a local target."""
        with self._lock:
            self._local[public_id] = supervisors_id

    def pop_local(self, public_id: str) -> str | None:
        """Forget a local monitor; returns its supervisors id."""
        with self._lock:
            return self._local.pop(public_id, None)

    def add_incoming(self, peer: str, wire_id: int, supervisors_id: str) -> None:
        """Record that ``peer`` watches a local actor through ``supervisors_id``."""
        with self._lock:
            self._incoming[(peer, wire_id)] = supervisors_id

    def set_incoming(self, peer: str, wire_id: int, supervisors_id: str) -> None:
        """Fill in the supervisors id of an incoming monitor, unless it was removed meanwhile."""
        with self._lock:
            if (peer, wire_id) in self._incoming:
                self._incoming[(peer, wire_id)] = supervisors_id

    def pop_incoming(self, peer: str, wire_id: int) -> str | None:
        """Forget one incoming monitor; returns its supervisors id."""
        with self._lock:
            return self._incoming.pop((peer, wire_id), None)

    def pop_incoming_of_peer(self, peer: str) -> list[str]:
        """Forget every incoming monitor of ``peer``; returns their supervisors ids."""
        with self._lock:
            keys = [k for k in self._incoming if k[0] == peer]
            return [self._incoming.pop(k) for k in keys]

    def pop_all_out(self) -> list[OutMonitor]:
        """Remove and return every outgoing monitor."""
        with self._lock:
            gone, self._out = list(self._out.values()), {}
        return gone

    def pop_all_incoming(self) -> list[str]:
        """Forget every incoming monitor; returns their supervisors ids."""
        with self._lock:
            gone, self._incoming = list(self._incoming.values()), {}
        return gone

    def counts(self) -> dict[str, int]:
        """How many monitors of each kind are active."""
        with self._lock:
            return {"outgoing": len(self._out), "incoming": len(self._incoming),
                    "local": len(self._local)}
