"""Reply slots: the caller's future of an ask, and what an answering actor completes.

Pykka's ``ThreadingFuture`` is built on a ``threading.Condition``, whose bookkeeping and
extra GIL hand-offs showed up as a large part of the ask round trip, so the runtime uses
lighter slots:

- :class:`ReplyFuture`, the caller's side: a :class:`supervisors.LatchFuture` (waiters block
  on one pre-acquired lock released once by the completer: a single futex wake).
- :class:`LocalReply`, the ``reply_to`` of a local ask: maps the actor's exception to
  :class:`~wind_actors.errors.ActorError` and completes a :class:`ReplyFuture`.

Actors only ever call ``set`` / ``set_exception`` on ``envelope.reply_to`` (Pykka's and
``supervisors.WatchedActor``'s loops), which is the whole contract a reply slot must keep.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

import pykka
from supervisors import LatchFuture

from wind_actors.errors import ActorError, NoSuchActor

__all__ = ["ReplyFuture", "LocalReply", "as_actor_error", "fail", "complete"]


class ReplyFuture(LatchFuture[Any]):
    """The caller's future of an ask: a :class:`supervisors.LatchFuture` that knows its peer.

    Completed once, by whichever comes first: the reply, the timeout sweep or
    the peer's loss (the others get ``queue.Full``, see :func:`fail`/:func:`complete`).

    Args:
        peer: the node a remote ask went to ("" for a local ask).
        deadline: ``time.monotonic()`` value after which the ask expires.
    """

    def __init__(self, peer: str = "", deadline: float = float("inf")) -> None:
        super().__init__()
        self.peer = peer  # the node asked, and when to give up: the future is its own
        self.deadline = deadline  # pending entry (see _pending)

    def __repr__(self) -> str:
        return "<wind.ReplyFuture>"


class LocalReply(pykka.Future[Any]):
    """``reply_to`` of a local ask (runs on the target actor's thread).

    Args:
        result: the caller's future.
        address: ``name@node`` of the target, for error messages.
        node: this node's name.
        actor: the target's registered name.
    """

    def __init__(self, result: ReplyFuture, address: str, node: str, actor: str) -> None:
        # pykka.Future.__init__ is skipped on purpose: this slot is never read, only set.
        self._result = result
        self._address = address
        self._node = node
        self._actor = actor

    def set(self, value: Any | None = None) -> None:
        complete(self._result, value)

    def set_exception(self, exc_info: Any = None) -> None:
        exc = (exc_info or sys.exc_info())[1]
        if isinstance(exc, pykka.ActorDeadError):
            err: Exception = NoSuchActor(f"{self._address} stopped before answering",
                                         node=self._node, actor=self._actor)
        else:
            err = as_actor_error(exc, self._actor, self._node)
        fail(self._result, err)


def as_actor_error(exc: BaseException | None, actor: str, node: str) -> ActorError:
    """Wrap what an actor raised as :class:`ActorError` (kept as is if it already is one)."""
    if isinstance(exc, ActorError):
        return exc
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    err = ActorError(text, remote_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                     recoverable=getattr(exc, "recoverable", None), node=node, actor=actor)
    err.__cause__ = exc
    return err


def fail(future: pykka.Future[Any], error: BaseException) -> None:
    """Complete ``future`` with ``error`` unless it is already complete."""
    try:
        future.set_exception((type(error), error, None))
    except queue.Full:
        pass


def complete(future: pykka.Future[Any], value: Any) -> None:
    """Complete ``future`` with ``value`` unless it is already complete."""
    try:
        future.set(value)
    except queue.Full:
        pass
