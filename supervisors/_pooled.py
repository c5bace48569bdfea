"""PooledActor: a WatchedActor without a thread of its own, run by an :class:`ActorPool`.

It keeps WatchedActor's loop, message by message (``_handle_envelope``: exit
signals, ``sender``, crashes, ask errors), and changes only who runs it: instead
of a thread blocked on its inbox, the inbox (:class:`_Mailbox`) schedules the
actor on its pool when a message arrives, and a worker runs one *turn*: up to
the pool's ``throughput`` messages (``on_start`` first, on the first turn).
When the actor stops, the turn that sees it refuses what is left in the inbox
(as Pykka's teardown does), closes it (later asks fail at once with
ActorDeadError instead of waiting for ever) and reports the exit to its watch.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
from typing import Any, ClassVar

import pykka
from pykka import messages

from supervisors._actor import WatchedActor, _this_thread
from supervisors._pool import ActorPool, get_pool
from supervisors._reasons import NORMAL

__all__ = ["PooledActor"]


class _Mailbox:
    """A pooled actor's inbox (Pykka's ``put``/``get``/``empty``): a FIFO that schedules its actor.

    ``scheduled`` is True while the actor is on the run queue or running; a ``put``
    that finds it False sets it and submits the actor. Only the worker running the
    actor takes messages, and ``release`` clears ``scheduled`` under the same lock
    as ``put`` checks it, so no message is left without a turn to handle it.
    """

    __slots__ = ("closed", "items", "lock", "pool", "scheduled", "turn")

    def __init__(self, actor: PooledActor, pool: ActorPool) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.lock = threading.Lock()
        self.scheduled = True  # until the actor is started, messages wait without a turn
        self.closed = False
        self.pool = pool
        self.turn = actor._run_turn

    def put(self, envelope: Any, /) -> None:
        with self.lock:
            closed = self.closed
            if not closed:
                self.items.append(envelope)
                if self.scheduled:
                    return
                self.scheduled = True
        if closed:
            _refuse(envelope)
        else:
            self.pool.submit(self.turn)

    def get(self) -> Any:
        """The next envelope; raises ``queue.Empty`` rather than block (a worker never waits here)."""
        try:
            return self.items.popleft()
        except IndexError:
            raise queue.Empty from None

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        """Messages waiting (as ``queue.SimpleQueue.qsize``)."""
        return len(self.items)

    def release(self) -> bool:
        """End a turn. Returns: True if messages remain (the actor stays scheduled; resubmit it)."""
        with self.lock:
            if self.items:
                return True
            self.scheduled = False
            return False

    def close(self) -> list[Any]:
        """Refuse every later message. Returns: the envelopes still queued."""
        with self.lock:
            self.closed = True
            rest = list(self.items)
            self.items.clear()
        return rest


def _refuse(envelope: Any) -> None:
    """Answer an envelope the actor will never handle, as Pykka's teardown does."""
    reply_to = envelope.reply_to
    if reply_to is None:
        return
    try:
        if isinstance(envelope.message, messages._ActorStop):
            reply_to.set(None)
        else:
            reply_to.set_exception((pykka.ActorDeadError,
                                    pykka.ActorDeadError("actor stopped before handling the message"), None))
    except queue.Full:
        pass  # already answered (a reply slot completed elsewhere, say by a timeout)


class PooledActor(WatchedActor):
    """A WatchedActor that runs on a shared pool of worker threads instead of its own thread.

    Everything else is WatchedActor's: the Pykka API (``tell``/``ask``/``stop``,
    proxies, futures), the hooks, exit reasons, monitors, links, ``trap_exits``,
    ``sender``, kill, and OTP supervision. It handles one message at a time, in
    arrival order, never on two workers at once; its ``on_start``, handlers and
    ``on_stop``/``on_failure`` run on whichever worker of its pool runs its turn
    (so thread-locals do not carry over between messages), and a hook that raises
    has the same effect as on a WatchedActor. ``use_daemon_thread`` has no effect:
    workers are daemon threads.

    A handler should not block for long: that holds a worker. Wind's own waits
    (``ask(...).get()``, starting a child) let the pool start a spare worker meanwhile
    (see :mod:`supervisors._pool`); actors whose handlers wait on drivers or I/O
    set ``pool = "blocking"``.

    Class attributes:
        pool: an :class:`ActorPool`, or the name of a shared one: ``"default"``
            (non-blocking handlers) or ``"blocking"``. Read when the actor is created.
    """

    pool: ClassVar[ActorPool | str] = "default"

    def _create_actor_inbox(self) -> _Mailbox:  # type: ignore[override]
        # Pykka calls this from Actor.__init__ (as a static method on other kinds of actor).
        self._set_up = False
        return _Mailbox(self, get_pool(self.pool))  # an instance may set its own before super().__init__()

    def _start_actor_loop(self) -> None:
        mailbox = self.actor_inbox
        mailbox.pool.submit(mailbox.turn)  # the first turn runs on_start; mailbox was held "scheduled"

    def _run_turn(self) -> None:
        """One turn on a worker: on_start the first time, then up to ``throughput`` messages."""
        mailbox: _Mailbox = self.actor_inbox  # type: ignore[assignment]
        stopped = self.actor_stopped.is_set
        _this_thread.ref = self.actor_ref
        try:
            if not self._set_up:
                self._set_up = True
                self._actor_loop_setup()
            budget, items = mailbox.pool.throughput, mailbox.items
            while budget and items and not stopped():
                budget -= 1
                if not self._handle_envelope(items.popleft()):
                    break
        except BaseException:  # _handle_envelope handles the actor's errors; keep the actor consistent anyway
            self._exit_reason = self._exit_reason or sys.exc_info()[1]
            self._handle_failure(*sys.exc_info())
        finally:
            _this_thread.ref = None
        if stopped():
            self._finish(mailbox)
        elif mailbox.release():
            mailbox.pool.submit(mailbox.turn)

    def _finish(self, mailbox: _Mailbox) -> None:
        for envelope in mailbox.close():
            _refuse(envelope)
        self._watch.die(self._exit_reason if self._exit_reason is not None else NORMAL)
