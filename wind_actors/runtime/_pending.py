"""Pending asks: the correlation table between an outgoing ASK and its REPLY (thread-safe).

An entry is the caller's reply future itself (a :class:`~._replies.ReplyFuture`, which
carries the ``peer`` asked and the ``deadline``): one object per ask instead of a future
plus a record pointing at it.

Each entry is taken out exactly once, under the table's lock, by whoever completes it: the
I/O thread for a reply, an error reply, an expired deadline or a lost peer; the caller for
its own timeout; ``Node.stop`` for everything left. That single take is what guarantees a
late reply is counted and dropped, never delivered to the wrong place.

Correlation ids are random 63-bit numbers, and a reply is taken only from the node the ask went
to (:meth:`PendingAsks.take_from`): a trusted peer cannot answer an ask that was not sent to it,
whatever id it names. The ids come from a generator seeded from ``os.urandom`` (one per table),
not from ``secrets`` per ask: that is a system call on every ask, and the sender check, not the
id, is what refuses a forged reply.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["PendingAsks", "Pending"]


class Pending(Protocol):
    """What the table needs of an entry: the peer asked and the deadline (monotonic s)."""

    peer: str
    deadline: float


class PendingAsks:
    """Correlation ids to pending entries (reply futures)."""

    def __init__(self) -> None:
        self._entries: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._random = random.Random(os.urandom(32))

    def add(self, entry: Pending) -> int:
        """Record an ask; returns its (random, unused) correlation id."""
        entries = self._entries
        with self._lock:
            corr = self._random.getrandbits(63)
            while corr in entries:
                corr = self._random.getrandbits(63)
            entries[corr] = entry
        return corr

    def take_from(self, corr: int, peer: str) -> tuple[Any | None, bool]:
        """Remove and return the entry ``corr`` if it was an ask to ``peer``.

        Returns:
            ``(entry, False)``; ``(None, False)`` when no such ask is pending; ``(None, True)``
            when it went to another node (the entry stays for the real reply).
        """
        with self._lock:
            entry = self._entries.get(corr)
            if entry is None:
                return None, False
            if entry.peer != peer:
                return None, True
            del self._entries[corr]
            return entry, False

    def take(self, corr: int) -> Any | None:
        """Remove and return the entry ``corr`` (None if another completer took it)."""
        with self._lock:
            return self._entries.pop(corr, None)

    def take_where(self, predicate: Callable[[Any], bool]) -> list[Any]:
        """Remove and return every entry matching ``predicate``."""
        with self._lock:
            corrs = [c for c, p in self._entries.items() if predicate(p)]
            return [self._entries.pop(c) for c in corrs]

    def take_all(self) -> list[Any]:
        """Remove and return every entry."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        return entries

    def __len__(self) -> int:
        return len(self._entries)
