"""A cheaper ask round trip for the driver actor: a C-level inbox and a one-lock reply future.

Pykka's ThreadingActor uses ``queue.Queue`` for its inbox and a
``threading.Condition`` per reply future. Both are written in Python: every
ask builds an RLock-backed Condition, and put/get/set/get each go through
several Python-level lock operations while holding the GIL. For a driver
actor whose calls take tens of microseconds (libvirt's test driver), that
bookkeeping cost more than the call itself (bench/drivers.py).

Here the inbox is a ``queue.SimpleQueue`` (implemented in C; same ``put``,
``get``, ``empty`` as Pykka and supervisors use) and the reply is a
:class:`LatchFuture`: one ``threading.Lock`` held from creation until the value
is set, so a waiter blocks in C with the GIL released and is woken by a
single release.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any, TypeVar

import pykka
from pykka._threading import ThreadingFutureResult

__all__ = ["LatchFuture", "simple_inbox"]

T = TypeVar("T")


def simple_inbox() -> queue.SimpleQueue[Any]:
    """An actor inbox: an unbounded C-level FIFO (``put``/``get``/``empty``)."""
    return queue.SimpleQueue()


class LatchFuture(pykka.ThreadingFuture[T]):
    """A :class:`pykka.ThreadingFuture` that waits on one lock instead of a Condition.

    Same contract as ThreadingFuture (value or exc_info set once, read many
    times, ``get(timeout=)`` raising :class:`pykka.Timeout`, get hooks for
    ``map``/``join``), with one restriction: exactly one thread sets it (the
    actor answering the ask), which is how Pykka uses reply futures.
    """

    def __init__(self) -> None:
        # ThreadingFuture.__init__ would build the Condition this class avoids.
        pykka.Future.__init__(self)
        self._result: ThreadingFutureResult | None = None
        self._latch = threading.Lock()
        self._latch.acquire()  # released once, by set()/set_exception()/set_get_hook()

    def get(self, *, timeout: float | None = None) -> Any:
        """Block until set (or ``timeout`` seconds), then return the value or raise the exception."""
        if self._result is None and self._get_hook is None:
            if not self._latch.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
                raise pykka.Timeout(f"{timeout} seconds")
            self._latch.release()  # stay open for every later get()
        if self._get_hook is not None:
            return pykka.Future.get(self, timeout=timeout)
        result = self._result
        assert result is not None
        if result.exc_info is not None:
            exc_type, exc_value, exc_traceback = result.exc_info
            assert exc_type is not None
            if exc_value is None:
                exc_value = exc_type()
            if exc_value.__traceback__ is not exc_traceback:
                raise exc_value.with_traceback(exc_traceback)
            raise exc_value
        return result.value

    def _complete(self, result: ThreadingFutureResult) -> None:
        if self._result is not None or self._get_hook is not None:
            raise queue.Full
        self._result = result
        self._latch.release()

    def set(self, value: Any | None = None) -> None:
        """Set the value (once)."""
        self._complete(ThreadingFutureResult(value=value))

    def set_exception(self, exc_info: Any | None = None) -> None:
        """Set the exception (once); default: the one being handled."""
        self._complete(ThreadingFutureResult(exc_info=exc_info if exc_info is not None else sys.exc_info()))

    def set_get_hook(self, func: Any) -> None:
        """Compute the value with ``func(timeout)`` on first get (see :meth:`pykka.Future.set_get_hook`)."""
        if self._result is not None or self._get_hook is not None:
            raise queue.Full
        pykka.Future.set_get_hook(self, func)
        self._latch.release()
