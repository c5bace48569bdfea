"""ActorPool: a bounded set of worker threads that run pooled actors (Akka's dispatcher).

A :class:`~supervisors.PooledActor` has no thread of its own. Its mailbox is
*scheduled* on its pool when it goes from empty to non-empty: the mailbox (as a
task) is put on the pool's run queue, a worker takes it and runs up to
``throughput`` of the actor's messages, then puts it back at the tail of the run
queue if more remain, or marks it idle. A mailbox is on the run queue at most
once, so one actor never runs on two workers at once, and its messages are
handled in the order they arrived.

**Blocking.** A worker that blocks (an ``ask`` to another actor, waiting for a
child's ``on_start``) holds its thread, and a small fixed pool whose every worker
waits for an actor queued behind them deadlocks. Wind's own waits (every
:class:`~supervisors.LatchFuture` ``get``, ``await_start``) therefore tell the
pool, through :func:`blocking`, that their worker is about to block; the pool
then starts another worker so that ``parallelism`` workers stay runnable, never
more than ``max_threads`` in all (Java's ForkJoinPool "managed blocker"). Spare
workers retire once the blocked ones are back and the queue has been idle for
``idle_timeout`` seconds. A wait on something else (a socket, a plain Pykka
``ThreadingFuture``, a lock) should be wrapped in ``with blocking():`` too.

Growth is bounded, so the bound can still be reached: actors whose handlers
block for long (driver calls) run on the separate ``"blocking"`` pool (Akka's
advice: blocking actors get their own dispatcher), so they can neither starve
nor deadlock the ``"default"`` pool's actors, and an actor on the blocking pool
must only block on actors that are not on it (the VM actors wait for the driver
actor, which has its own thread). The thread count is that of the pools' bounds,
whatever the number of actors.

Workers are daemon threads: a pooled actor does not keep the interpreter alive.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import structlog

__all__ = ["ActorPool", "blocking", "get_pool"]

_log = structlog.get_logger("wind.supervisors.pool")
_worker = threading.local()  # .pool: the ActorPool whose worker this thread is

Task = Callable[[], None]


class ActorPool:
    """Worker threads shared by pooled actors.

    Args:
        name: names the worker threads (``NAME-1``, ``NAME-2`` ...).
        parallelism: workers kept runnable (not blocked); default: the CPU count, at least 2.
        max_threads: never more workers than this, blocked ones included;
            default: 8 times ``parallelism``.
        throughput: messages one actor handles per turn before the worker
            moves on to the next scheduled actor (fairness against batching).
        idle_timeout: seconds a spare worker (beyond ``parallelism``) waits
            for work before it retires.
    """

    def __init__(self, name: str = "pool", *, parallelism: int | None = None,
                 max_threads: int | None = None, throughput: int = 16, idle_timeout: float = 2.0) -> None:
        self.name = name
        self.parallelism = parallelism or max(2, os.cpu_count() or 2)
        self.max_threads = max_threads or 8 * self.parallelism
        if not 1 <= self.parallelism <= self.max_threads or throughput < 1 or idle_timeout <= 0:
            raise ValueError(f"pool {name}: need 1 <= parallelism <= max_threads, throughput >= 1 "
                             f"and idle_timeout > 0 (got {self.parallelism}, {self.max_threads}, "
                             f"{throughput}, {idle_timeout})")
        self.throughput = throughput
        self.idle_timeout = idle_timeout
        self._runq: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._blocked = 0
        self._peak = 0
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<ActorPool {self.name} {self.stats()}>"

    def submit(self, task: Task) -> None:
        """Queue ``task`` (one turn of a scheduled actor) to run on a worker. Never blocks."""
        self._runq.put(task)
        if self._threads - self._blocked < self.parallelism:  # unlocked peek; _grow re-checks
            self._grow()

    def stats(self) -> dict[str, int]:
        """Returns: ``threads`` (workers alive), ``blocked``, ``peak`` (most workers at once)
        and ``queued`` (actors waiting for a worker)."""
        with self._lock:
            return {"threads": self._threads, "blocked": self._blocked, "peak": self._peak,
                    "queued": self._runq.qsize()}

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Count the calling worker as blocked while inside; start a spare worker if needed."""
        with self._lock:
            self._blocked += 1
        if not self._runq.empty():
            self._grow()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    # -- workers ------------------------------------------------------------------------------

    def _grow(self) -> None:
        with self._lock:
            if self._threads - self._blocked >= self.parallelism or self._threads >= self.max_threads:
                return
            self._threads += 1
            self._peak = max(self._peak, self._threads)
            number = next(self._ids)
        thread = threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True)
        thread.start()

    def _retire(self) -> bool:
        """Leave if more workers than ``parallelism`` are runnable (called by an idle worker)."""
        with self._lock:
            if self._threads - self._blocked > self.parallelism:
                self._threads -= 1
                return True
        return False

    def _work(self) -> None:
        _worker.pool = self
        get, timeout = self._runq.get, self.idle_timeout
        while True:
            try:
                task = get(timeout=timeout)
            except queue.Empty:
                if self._retire():
                    return
                continue
            try:
                task()
            except BaseException:  # a turn handles its actor's errors; this is a bug, not a crash
                _log.exception("pool_task_failed", pool=self.name)
            if self._threads - self._blocked > self.parallelism and self._retire():
                return


def blocking() -> contextlib.AbstractContextManager[None]:
    """Context manager for a wait that may block a pool worker (a no-op on other threads).

    Example::

        with blocking():
            reply = sock.recv()
    """
    pool = getattr(_worker, "pool", None)
    return pool.blocked() if pool is not None else contextlib.nullcontext()


_pools: dict[str, ActorPool] = {}
_pools_lock = threading.Lock()
_DEFAULTS: dict[str, dict[str, Any]] = {
    # CPU-bound Python is held to one core by the GIL: a few runnable workers suffice.
    "default": {},
    # Handlers that wait on drivers: more of them may wait at once, never unbounded.
    "blocking": {"parallelism": 8, "max_threads": 64},
}


def get_pool(pool: ActorPool | str) -> ActorPool:
    """The pool itself, or the shared pool of that name (created on first use).

    Args:
        pool: an ActorPool, ``"default"`` (non-blocking actors) or ``"blocking"``
            (actors whose handlers wait on drivers); any other name gets a
            default-sized pool of its own.
    """
    if isinstance(pool, ActorPool):
        return pool
    found = _pools.get(pool)
    if found is None:
        with _pools_lock:
            found = _pools.get(pool)
            if found is None:
                found = _pools[pool] = ActorPool(pool, **_DEFAULTS.get(pool, {}))
    return found
