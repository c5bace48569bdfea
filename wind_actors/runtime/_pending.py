"""Pending asks: the correlation table between an outgoing ASK and its REPLY (thread-safe).

Each entry is taken out exactly once, under the table's lock, by whoever completes it: the
I/O thread for a reply, an error reply, an expired deadline or a lost peer; the caller for
its own timeout; ``Node.stop`` for everything left. That single take is what guarantees a
late reply is counted and dropped, never delivered to the wrong place.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["PendingAsks", "Pending"]


class Pending:
    """One ask waiting for its reply: the caller's future, the peer asked and a deadline."""

    __slots__ = ("future", "peer", "deadline")

    def __init__(self, future: Any, peer: str, deadline: float) -> None:
        self.future = future
        self.peer = peer
        self.deadline = deadline


class PendingAsks:
    """Correlation ids to :class:`Pending` entries."""

    def __init__(self) -> None:
        self._entries: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._corr = itertools.count(1)

    def add(self, future: Any, peer: str, deadline: float) -> int:
        """Record an ask; returns its correlation id."""
        corr = next(self._corr)
        entry = Pending(future, peer, deadline)
        with self._lock:
            self._entries[corr] = entry
        return corr

    def take(self, corr: int) -> Pending | None:
        """Remove and return the entry ``corr`` (None if another completer took it)."""
        with self._lock:
            return self._entries.pop(corr, None)

    def take_where(self, predicate: Callable[[Pending], bool]) -> list[Pending]:
        """Remove and return every entry matching ``predicate``."""
        with self._lock:
            corrs = [c for c, p in self._entries.items() if predicate(p)]
            return [self._entries.pop(c) for c in corrs]

    def take_all(self) -> list[Pending]:
        """Remove and return every entry."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        return entries

    def __len__(self) -> int:
        return len(self._entries)
