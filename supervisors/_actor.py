"""WatchedActor: a Pykka ThreadingActor whose death can be watched.

It replaces Pykka's receive loop (same behaviour, plus exit signals) so that
every way an actor ends is seen, with its reason, by monitors and links.
"""

from __future__ import annotations

import queue
import sys
import threading
import traceback as _traceback
from types import TracebackType
from typing import Any, ClassVar, Self

import pykka
import structlog
from pykka import messages

from supervisors._future import LatchFuture
from supervisors._latch import Latch
from supervisors._reasons import NORMAL
from supervisors._watch import WAKE, _Watch, await_start
from supervisors.errors import StartError, SupervisionError

__all__ = ["WatchedActor", "running_actor"]

_log = structlog.get_logger("wind.supervisors.actor")
_this_thread = threading.local()


def running_actor() -> pykka.ActorRef[Any] | None:
    """The ref of the WatchedActor whose thread calls this (or the PooledActor whose turn a pool
    worker is running), or None outside any actor.

    A supervisor reads it when it is created, to know its parent: the actor that
    starts it (OTP's parent is the process that called ``start_link``).
    """
    return getattr(_this_thread, "ref", None)


class WatchedActor(pykka.ThreadingActor):
    """Base class of every Wind actor; monitors, links and supervisors work on it.

    Exit reasons, as monitors (``Down``) and links (``Exit``) see them:

    - ``"normal"``: stopped from outside with ``ref.stop()``, or ``stop_with("normal")``;
    - the exception instance: raised while handling a ``tell``, or raised in
      ``on_start`` (or in ``on_stop`` / ``on_failure``);
    - ``"shutdown"``: stopped by its supervisor;
    - ``"killed"``: abandoned by brutal_kill or an expired shutdown timeout;
    - anything given to ``stop_with(reason)``, or a linked actor's reason.

    An exception raised while answering an ``ask`` is returned to the caller and
    the actor lives on (Pykka's contract), unless the class sets
    ``crash_on_ask_error = True``, in which case it also crashes with it (OTP's).

    Class attributes:
        trap_exits: if True, a linked actor's exit arrives as an ``Exit``
            message (via ``on_receive``) instead of stopping this actor.
        crash_on_ask_error: see above.

    Attributes:
        sender: who sent the message being handled, read from the envelope's
            ``sender`` slot (the Wind runtime puts the authenticated peer's
            identity there); ``None`` for a message sent in this process.
            Valid only inside ``on_receive``.
    """

    trap_exits: ClassVar[bool] = False
    crash_on_ask_error: ClassVar[bool] = False
    # A C-level FIFO (put/get/empty, all the loops use) and a one-lock reply future:
    # queue.Queue's and ThreadingFuture's Python-level Conditions cost several
    # microseconds per message on the ask round trip (see supervisors._future).
    _create_actor_inbox = staticmethod(queue.SimpleQueue)
    _create_future = staticmethod(LatchFuture)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Pykka's stopped flag is a threading.Event (~2 KB); a Latch does what it is used for.
        self.actor_stopped = self.actor_ref.actor_stopped = Latch()  # type: ignore[assignment]
        self._exit_reason: Any = None
        self.sender: Any = None
        self._watch = _Watch(self)
        # ActorRef has no slots; hanging the watch on it lets any holder of the ref
        # watch the actor without a global table that would keep dead actors alive.
        self.actor_ref._wind_watch = self._watch  # type: ignore[attr-defined]

    @classmethod
    def start_sync(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """Start the actor and wait for its ``on_start`` (like OTP's start_link).

        Returns:
            The ref of the running actor.

        Raises:
            StartError: ``on_start`` raised; ``.reason`` is that exception.
        """
        ref = cls.start(*args, **kwargs)
        error = await_start(ref)
        if isinstance(error, SupervisionError):
            raise error  # already says what failed, and where
        if error is not None:
            raise StartError(error) from error
        return ref

    def stop_with(self, reason: Any) -> None:
        """Stop this actor with ``reason`` once the current message is handled.

        Call it from inside the actor (a handler or hook). ``on_stop`` runs.

        Args:
            reason: "normal", "shutdown", ("shutdown", detail), an exception, ...
        """
        if self._exit_reason is None:
            self._exit_reason = reason
        if not self.actor_stopped.is_set():
            self._stop()

    # -- Pykka internals, overridden ------------------------------------------

    def _stop(self) -> None:
        if self._exit_reason is None:
            self._exit_reason = NORMAL
        super()._stop()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._exit_reason is None:
            self._exit_reason = exception_value
        # The reason and where it was raised, not a full traceback: supervision
        # logs must stay readable when a child crashes over and over.
        frames = _traceback.extract_tb(traceback) if traceback is not None else []
        where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
        _log.error("actor_crashed", actor=str(self.actor_ref), reason=repr(exception_value), where=where)
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _actor_loop(self) -> None:
        _this_thread.ref = self.actor_ref  # each actor has its own thread, for its whole life
        try:
            super()._actor_loop()
        finally:
            self._watch.die(self._exit_reason if self._exit_reason is not None else NORMAL)

    def _actor_loop_setup(self) -> None:
        try:
            self.on_start()
        except Exception:
            self._watch.start_error = sys.exc_info()[1]
            self._handle_failure(*sys.exc_info())
        finally:
            self._watch.started.set()

    def _actor_loop_running(self) -> None:
        get, stopped = self.actor_inbox.get, self.actor_stopped.is_set
        while not stopped():
            if not self._handle_envelope(get()):
                return

    def _handle_envelope(self, envelope: Any) -> bool:
        """Handle one envelope as Pykka's loop does, plus exit signals (every actor kind's loop).

        Returns:
            False if the actor must take no further message (an exit signal was taken).
        """
        if self._watch.signal is not None:
            self._take_exit_signal(envelope)
            return False
        message = envelope.message
        if message is WAKE:
            return True
        # an envelope from the runtime carries who sent it; a plain Pykka one does not
        self.sender = getattr(envelope, "sender", None)
        try:
            response = self._handle_receive(message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            exc_info = sys.exc_info()
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(exc_info)
                if not self.crash_on_ask_error:
                    return True
            self._handle_failure(*exc_info)
            try:
                self.on_failure(*exc_info)
            except Exception:
                self._handle_failure(*sys.exc_info())
        except BaseException:
            # Pykka's rule: KeyboardInterrupt/SystemExit stop every actor.
            self._exit_reason = self._exit_reason or sys.exc_info()[1]
            self._stop()
            pykka.ActorRegistry.stop_all()
        return True

    def _take_exit_signal(self, envelope: Any) -> None:
        """Stop because of an exit signal, refusing the message just taken."""
        if envelope.reply_to is not None and envelope.message is not WAKE:
            if isinstance(envelope.message, messages._ActorStop):
                envelope.reply_to.set(None)
            else:
                envelope.reply_to.set_exception(
                    (pykka.ActorDeadError, pykka.ActorDeadError(f"{self.actor_ref} is stopping"), None)
                )
        if self._watch.killed:
            return  # abandoned: no hooks, and the watch already reported "killed"
        self._exit_reason = self._exit_reason or self._watch.signal
        if not self.actor_stopped.is_set():
            self._stop()
