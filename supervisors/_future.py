"""LatchFuture: the reply future of every Wind actor's ask.

Pykka's ``ThreadingFuture`` is built on a ``threading.Condition``: every ask
builds an RLock-backed Condition, and each ``get`` allocates a waiter lock
while ``set`` takes the RLock and notifies, all in Python code holding the
GIL. For an actor whose work takes tens of microseconds (a libvirt test-driver
call, a registry lookup) that bookkeeping cost more than the work
(bench/drivers.py). A LatchFuture is one ``threading.Lock`` held from creation
until the value is set: a waiter blocks in C with the GIL released and is woken
by a single release.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any, TypeVar

import pykka

from supervisors._pool import blocking

__all__ = ["LatchFuture"]

T = TypeVar("T")

_UNSET: Any = object()


class LatchFuture(pykka.Future[T]):
    """A one-shot :class:`pykka.Future`: set once (by any thread), read by any number of threads.

    Same contract as Pykka's ``ThreadingFuture``: ``set``/``set_exception``
    complete it once and raise ``queue.Full`` after that (so a late completer,
    say a timeout racing the reply, learns it lost); ``get(timeout=)`` raises
    :class:`pykka.Timeout`; the get hooks behind ``map``/``filter``/``join``
    and :func:`pykka.get_all` work as on any Pykka future.
    """

    def __init__(self) -> None:
        super().__init__()
        self._value: Any = _UNSET
        self._exc_info: Any = None
        self._done = threading.Lock()
        self._done.acquire()  # released once, by the completer: waiters block on it
        self._once = threading.Lock()  # taken by the one completer that wins

    def get(self, *, timeout: float | None = None) -> Any:
        """Block until set (or ``timeout`` seconds), then return the value or raise the exception."""
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._value is _UNSET:
            if not self._done.acquire(False):
                with blocking():  # a pool worker about to wait: the pool keeps others runnable
                    done = self._done.acquire(True, -1 if timeout is None else max(timeout, 0.0))
                if not done:
                    raise pykka.Timeout(f"{timeout} seconds")
            self._done.release()  # stay open for every later get()
            if self._get_hook is not None:
                return super().get(timeout=timeout)
        if self._exc_info is not None:
            exc_type, exc_value, traceback = self._exc_info
            if exc_value is None:
                exc_value = exc_type()
            if traceback is not None and exc_value.__traceback__ is not traceback:
                raise exc_value.with_traceback(traceback)
            raise exc_value
        return self._value

    def set(self, value: Any | None = None) -> None:
        """Complete with ``value``; ``queue.Full`` if already complete."""
        if not self._once.acquire(False):
            raise queue.Full
        self._value = value
        self._done.release()

    def set_exception(self, exc_info: Any | None = None) -> None:
        """Complete with an exception (``sys.exc_info()`` style; default: the one being handled)."""
        if not self._once.acquire(False):
            raise queue.Full
        exc_info = exc_info if exc_info is not None else sys.exc_info()
        if exc_info[0] is None:  # called outside an except block: still fail the waiters clearly
            error = RuntimeError("set_exception() was called with no exception to set")
            exc_info = (RuntimeError, error, None)
        self._exc_info = exc_info
        self._value = None
        self._done.release()

    def set_get_hook(self, func: Any) -> None:
        """Compute the value with ``func(timeout)`` on first get (see :meth:`pykka.Future.set_get_hook`)."""
        if not self._once.acquire(False):
            raise queue.Full
        super().set_get_hook(func)
        self._done.release()
