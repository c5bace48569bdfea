"""Death watch: monitors and links between local WatchedActors.

Each WatchedActor owns one ``_Watch`` (reachable from its ActorRef as
``ref._wind_watch``) that records whether it is alive, its exit reason, its
monitors and its links. ``die()`` runs exactly once per actor, in whichever
thread ends it: the actor's own thread when it stops or crashes, or the thread
that abandons it (brutal_kill, an expired shutdown timeout).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
import structlog
from pykka._envelope import Envelope

from supervisors._latch import Latch
from supervisors._pool import blocking
from supervisors._reasons import KILLED, NOPROC, NORMAL, describe
from supervisors.errors import NotWatchableError

if TYPE_CHECKING:
    from supervisors._actor import WatchedActor

__all__ = ["Down", "Exit", "demonitor", "exit_signal", "link", "monitor", "unlink"]

_log = structlog.get_logger("wind.supervisors.watch")


@dataclass(frozen=True)
class Down:
    """A monitored actor has exited.

    Attributes:
        monitor_id: what ``monitor()`` returned.
        ref: the actor that exited.
        reason: its exit reason (a string, a ("shutdown", detail) tuple or an exception).
    """

    monitor_id: str
    ref: pykka.ActorRef[Any]
    reason: Any


@dataclass(frozen=True)
class Exit:
    """A linked actor has exited; delivered only to actors with ``trap_exits = True``.

    Attributes:
        ref: the linked actor that exited.
        reason: its exit reason.
    """

    ref: pykka.ActorRef[Any]
    reason: Any


class _Wake:
    """Inbox filler that wakes an idle actor so it notices an exit signal."""

    __slots__ = ()


WAKE = _Wake()
Watcher = pykka.ActorRef[Any] | Callable[[Down], None]

_ids = itertools.count(1)
_monitors: dict[str, _Watch] = {}
_monitors_lock = threading.Lock()


class _Watch:
    __slots__ = ("actor", "alive", "killed", "links", "lock", "monitors", "reason", "ref",
                 "signal", "start_error", "started", "urn")

    def __init__(self, actor: WatchedActor) -> None:
        self.actor = weakref.ref(actor)
        self.ref: pykka.ActorRef[Any] = actor.actor_ref
        self.urn = actor.actor_urn
        self.lock = threading.Lock()
        self.alive = True
        self.killed = False
        self.reason: Any = None
        self.signal: Any = None  # a pending exit signal, taken before the next message
        self.monitors: dict[str, Watcher] = {}
        self.links: dict[str, _Watch] = {}
        self.started = Latch()
        self.start_error: BaseException | None = None

    def trap_exits(self) -> bool:
        actor = self.actor()
        return bool(actor is not None and actor.trap_exits)

    def die(self, reason: Any) -> bool:
        """Mark the actor dead and tell its monitors and links; only the first call counts."""
        with self.lock:
            if not self.alive:
                return False
            self.alive = False
            self.reason = reason
            monitors, self.monitors = self.monitors, {}
            links, self.links = self.links, {}
        if not self.started.is_set():
            self.start_error = self.start_error or _as_exception(reason)
            self.started.set()
        with _monitors_lock:
            for mid in monitors:
                _monitors.pop(mid, None)
        for mid, watcher in monitors.items():
            _deliver(watcher, Down(mid, self.ref, reason))
        for peer in links.values():
            with peer.lock:
                peer.links.pop(self.urn, None)
            peer.exit_signal(self.ref, reason)
        return True

    def exit_signal(self, sender: pykka.ActorRef[Any], reason: Any) -> None:
        """Deliver a link's exit signal: an Exit message if trapping, else die with it."""
        if not self.alive:
            return
        if self.trap_exits():
            _deliver(self.ref, Exit(sender, reason))
        elif reason != NORMAL:
            self.stop_before_next_message(reason)

    def stop_before_next_message(self, reason: Any) -> None:
        """Ask the actor to stop with ``reason`` before it takes another message."""
        with self.lock:
            if not self.alive or self.signal is not None:
                return
            self.signal = reason
        self.ref.actor_inbox.put(Envelope(WAKE))

    def kill(self) -> bool:
        """Abandon the actor: it is dead ("killed") now, whatever its thread is doing.

        A Python thread cannot be interrupted, so the thread finishes whatever
        call it is in; it then takes no further message and runs no hook.
        """
        with self.lock:
            if not self.alive:
                return False
            self.killed = True
        pykka.ActorRegistry.unregister(self.ref)
        self.ref.actor_stopped.set()
        self.ref.actor_inbox.put(Envelope(WAKE))
        return self.die(KILLED)


def _as_exception(reason: Any) -> BaseException:
    if isinstance(reason, BaseException):
        return reason
    return RuntimeError(f"actor exited with reason {describe(reason)} before on_start finished")


def _deliver(watcher: Watcher, message: Down | Exit) -> None:
    if isinstance(watcher, pykka.ActorRef):
        try:
            watcher.tell(message)
        except pykka.ActorDeadError:
            pass  # a dead watcher has nothing left to learn
        return
    try:
        watcher(message)  # type: ignore[arg-type]
    except Exception:  # a broken callback must not stop the others
        _log.exception("watcher_failed", watcher=repr(watcher), message=repr(message))


def watch_of(ref: Any, role: str = "actor") -> _Watch:
    """Return the watch of a WatchedActor's ref, or raise NotWatchableError."""
    watch = getattr(ref, "_wind_watch", None)
    if not isinstance(watch, _Watch):
        raise NotWatchableError(ref, role)
    return watch


def has_exited(ref: pykka.ActorRef[Any]) -> bool:
    """Whether ``ref``'s actor has exited, as its monitors and supervisor see it.

    True from the moment its exit is reported (before its thread has finished, so a restarted
    successor may take over its names), or once Pykka says it is not alive.
    """
    watch = getattr(ref, "_wind_watch", None)
    return (isinstance(watch, _Watch) and not watch.alive) or not ref.is_alive()


def monitor(target: pykka.ActorRef[Any], watcher: Watcher) -> str:
    """Watch ``target`` until it exits, once.

    Args:
        target: the ref of a WatchedActor.
        watcher: an ActorRef, which gets the ``Down`` by ``tell``; or a callable
            ``watcher(down)``, called in the thread where the target ended (its
            own, or the one that killed it). A callable must not block.

    Returns:
        The monitor id, for ``demonitor`` and found again in ``Down.monitor_id``.
        If the target is already dead the ``Down`` (reason "noproc") is
        delivered before this returns.

    Raises:
        NotWatchableError: target is not a WatchedActor's ref.
    """
    watch = watch_of(target, "monitor target")
    if not isinstance(watcher, pykka.ActorRef) and not callable(watcher):
        raise TypeError(f"watcher {watcher!r} is not allowed; use an ActorRef or a callable(Down)")
    mid = f"mon-{next(_ids)}"
    with watch.lock:
        alive = watch.alive
        if alive:
            watch.monitors[mid] = watcher
    if not alive:
        _deliver(watcher, Down(mid, target, NOPROC))
        return mid
    with _monitors_lock:
        _monitors[mid] = watch
    return mid


def demonitor(monitor_id: str) -> bool:
    """Cancel a monitor. A Down already sent (tell) is not taken back.

    Returns:
        True if the monitor was active, False if it had fired or never existed.
    """
    with _monitors_lock:
        watch = _monitors.pop(monitor_id, None)
    if watch is None:
        return False
    with watch.lock:
        return watch.monitors.pop(monitor_id, None) is not None


def link(a: pykka.ActorRef[Any], b: pykka.ActorRef[Any]) -> None:
    """Link two WatchedActors both ways.

    When one exits, the other gets an exit signal with the same reason: an
    ``Exit`` message if it has ``trap_exits = True``; otherwise it ignores a
    "normal" reason and stops with any other, before its next message. If one
    of them is already dead, the other gets that signal with reason "noproc"
    now (as ``erlang:link/1``).

    Raises:
        NotWatchableError: either is not a WatchedActor's ref.
    """
    wa, wb = watch_of(a, "link end"), watch_of(b, "link end")
    if wa is wb:
        return
    first, second = sorted((wa, wb), key=lambda w: w.urn)
    with first.lock, second.lock:
        both = wa.alive and wb.alive
        if both:
            wa.links[wb.urn] = wb
            wb.links[wa.urn] = wa
        dead_a = not wa.alive
    if not both:
        dead, live = (wa, wb) if dead_a else (wb, wa)
        live.exit_signal(dead.ref, NOPROC)


def exit_signal(target: pykka.ActorRef[Any], sender: Any, reason: Any) -> None:
    """Deliver a link's exit signal to a local WatchedActor, as if ``sender`` had exited.

    For links that cross nodes: the remote runtime calls this when a remote
    linked actor exits (or its node is lost, reason "noconnection"). The target
    behaves exactly as for a local link: with ``trap_exits`` it gets
    ``Exit(sender, reason)``; otherwise "normal" is ignored and any other reason
    stops it before its next message. Nothing happens if the target is dead.

    Args:
        target: the local WatchedActor's ref.
        sender: what ``Exit.ref`` will hold (a local ref or a remote ref).
        reason: the exit reason.

    Raises:
        NotWatchableError: target is not a WatchedActor's ref.
    """
    watch_of(target, "exit signal target").exit_signal(sender, reason)


def unlink(a: pykka.ActorRef[Any], b: pykka.ActorRef[Any]) -> None:
    """Remove the link between two WatchedActors, if any."""
    wa, wb = watch_of(a, "link end"), watch_of(b, "link end")
    first, second = sorted((wa, wb), key=lambda w: w.urn)
    with first.lock, second.lock:
        wa.links.pop(wb.urn, None)
        wb.links.pop(wa.urn, None)


def await_start(ref: pykka.ActorRef[Any], timeout: float | None = None) -> BaseException | None:
    """Wait until the actor's ``on_start`` has returned or failed.

    Returns:
        None if it started, else the exception behind the failure.
    """
    watch = watch_of(ref)
    if not watch.started.is_set():
        with blocking():  # the child may need a worker of the caller's pool to start
            started = watch.started.wait(timeout)
        if not started:
            return TimeoutError(f"{ref} did not finish on_start within {timeout} s")
    return watch.start_error
