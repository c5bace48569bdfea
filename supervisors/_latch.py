"""Latch: a one-way ``threading.Event`` (set once, never cleared) that costs one lock.

Every actor has two such flags (stopped, and started for ``await_start``). A
``threading.Event`` is a Condition with its own RLock, deque of waiters and bound
methods, about 2 KB each; an agent holds one actor per VM, so at 10,000 VMs the
Events alone were 40 MB. A Latch is a slot object and a lock.
"""

from __future__ import annotations

import threading

__all__ = ["Latch"]

# Taken only by set(), once in each latch's life: it keeps two setters from both releasing.
_setting = threading.Lock()


class Latch:
    """A flag that is set once; ``wait`` blocks until it is. Thread-safe.

    Offers the part of ``threading.Event`` Pykka and the supervisors use: ``set``,
    ``is_set`` and ``wait``. There is no ``clear``: a latch never goes back.
    """

    __slots__ = ("_flag", "_gate")

    def __init__(self) -> None:
        self._flag = False
        self._gate = threading.Lock()
        self._gate.acquire()  # released by set(); each waiter passes it on by releasing it again

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter (later calls do nothing)."""
        with _setting:
            if self._flag:
                return
            self._flag = True
            self._gate.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set, or ``timeout`` seconds. Returns whether it is set."""
        if self._flag:
            return True
        if not self._gate.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            return False
        self._gate.release()  # for the next waiter
        return True
