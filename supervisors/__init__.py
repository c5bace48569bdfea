"""OTP supervision trees and death watch for Pykka actors.

Every Wind actor subclasses :class:`WatchedActor`. A :class:`Supervisor` is a
WatchedActor that starts children from :class:`ChildSpec` s, watches them and
restarts them following Erlang/OTP's ``supervisor`` exactly: the strategies
one_for_one, one_for_all, rest_for_one and simple_one_for_one; restart types
permanent, transient and temporary; restart intensity over a period (a pure
function, :func:`add_restart`), escalated to the parent when exceeded; ordered
start, reverse-order shutdown with timeouts; auto_shutdown with significant
children; and OTP's named outcomes (:class:`ChildError` ``.outcome``). Beyond
OTP, a child may have an exponential :class:`Backoff` between restarts.

Example::

    from supervisors import ChildSpec, SupFlags, WatchedActor, start_supervisor

    class Worker(WatchedActor):
        def on_receive(self, message):
            if message == "crash":
                raise RuntimeError("boom")    # a crash: the supervisor restarts it
            return message

    sup = start_supervisor(SupFlags(strategy="one_for_one", intensity=3, period=5),
                           [ChildSpec(id="w", start=Worker.start)])

**Exit reasons.** "normal" when stopped from outside with ``ref.stop()`` (or
``stop_with("normal")``); "shutdown" when its supervisor stops it; the exception
instance when it raised while handling a ``tell`` or in ``on_start``; "killed"
when abandoned (below); "noproc" when watched after it died; "noconnection"
when its node is unreachable (remote runtime); anything given to
``WatchedActor.stop_with(reason)``. A transient child stays down for
"normal", "shutdown" and ``("shutdown", detail)``, and is restarted otherwise.

**Exceptions while answering an ask.** Pykka hands them to the caller and the
actor lives on; Wind keeps that: it is *not* a crash and the supervisor does
not hear of it. The caller asked, so the caller is the one able to act on the
error, and the actor's state was not corrupted by a request it refused (this is
how ``gen_server`` callers use ``{reply, {error, _}, State}``). Making every
refused request a restart would turn validation errors into restart storms and
eat the restart intensity meant for real faults. An actor that wants OTP's
behaviour sets ``crash_on_ask_error = True``: the caller still gets the
exception, and the actor then crashes with it. Raising in a ``tell`` handler
always crashes.

**Stopping, and what "kill" means for a thread.** A supervisor stops a child by
asking it politely: the child stops with reason "shutdown" before it takes its
next message, and its ``on_stop`` runs. The supervisor waits up to the child's
``shutdown`` seconds ("infinity" waits for ever, the default for supervisor
children). A Python thread cannot be killed, so ``brutal_kill``, and a timeout
that expires, *abandon* the child: it is marked dead at once and reported
with reason "killed" to its monitors and links (so the supervisor moves on),
it is removed from Pykka's registry, its inbox is closed (``tell`` raises
ActorDeadError and queued ``ask`` s fail with it), and it runs no further
handler or hook. Whatever call its thread is stuck in keeps running until it
returns on its own; nobody waits for it, and if it never returns its (non
daemon) thread keeps the interpreter alive at exit, so actors that may block
for ever should set ``use_daemon_thread = True``.

**Death watch.** :func:`monitor` delivers one :class:`Down` (to an ActorRef by
``tell``, or to a callable in the thread where the actor ended; the callable
must not block) on every kind of exit listed above, or at once with "noproc"
for an actor already dead. :func:`link` is bidirectional: an abnormal exit
stops the linked peer with the same reason before its next message, unless it
has ``trap_exits = True``, in which case it gets an :class:`Exit` message.
Supervisors trap exits and link to their children, so a killed supervisor takes
its children with it. A supervisor follows only its parent's exit (its parent is
the actor it was started from: the supervisor it is a child of, or the actor that
called ``start_supervisor``); as in OTP, an exit from any other linked actor is
ignored.

**Restart failures** never block a supervisor: the child is shown as
"restarting" and the supervisor retries through its own mailbox (OTP's
``try_again_restart``), answering calls in between; every retry counts towards
the intensity. A retry whose ``start`` returns None (ignore) leaves the child
not running ("undefined"), as OTP does.

**which_children** lists children in OTP's order: newest first (a child added
by ``start_child`` comes first; a restart keeps its place), which is also the
order they are stopped in; dynamic (simple_one_for_one) children oldest start
first, those being restarted last.

**Reports** are structlog events on logger ``wind.supervisors`` (``child_started``,
``child_terminated``, ``child_restarted``, ``restart_failed``, ``start_error``,
``shutdown_error``, ``reached_max_restart_intensity``, ``auto_shutdown``,
``exit_ignored``) carrying ``supervisor``, ``child``, ``reason`` and
``restarts``. ``child_started`` and ``child_shutdown`` of a simple_one_for_one
supervisor's children are at debug level (there may be thousands, each reporting
itself), like OTP's progress reports. :func:`tree` returns the live tree as plain data.

A supervisor is busy while it starts a child (it waits for the child's
``on_start``, as OTP waits for ``init/1``): a child must not call its own
supervisor's API from ``on_start``, or both wait for ever.

**Pooled actors.** A :class:`WatchedActor` has its own OS thread. A
:class:`PooledActor` behaves the same (Pykka API, hooks, exit reasons, monitors,
links, supervision) but runs on an :class:`ActorPool`'s workers, one message at
a time and in order, so ten thousand of them cost a few KB each and a bounded
number of threads. Waits inside a pooled handler (an ask, a child's start) let
the pool start a spare worker, up to its bound (:func:`blocking`); actors that
wait on drivers use the separate ``"blocking"`` pool (:func:`get_pool`).
"""

from supervisors._actor import WatchedActor
from supervisors._pool import ActorPool, blocking, get_pool
from supervisors._pooled import PooledActor
from supervisors._api import (
    count_children,
    delete_child,
    get_childspec,
    restart_child,
    start_child,
    start_children,
    start_supervisor,
    terminate_child,
    tree,
    which_children,
)
from supervisors._children import ChildInfo
from supervisors._clock import Clock, ManualClock, MonotonicClock
from supervisors._future import LatchFuture
from supervisors._intensity import add_restart, backoff_delay, intensity_exceeded
from supervisors._reasons import KILLED, NOCONNECTION, NOPROC, NORMAL, SHUTDOWN, describe, is_normal_exit
from supervisors._shutdown import kill
from supervisors._spec import Backoff, ChildSpec, SupFlags, check_childspec, check_childspecs
from supervisors._supervisor import Supervisor
from supervisors._watch import Down, Exit, demonitor, exit_signal, has_exited, link, monitor, unlink
from supervisors.errors import (
    ChildError,
    NoProcError,
    NotWatchableError,
    Outcome,
    SpecError,
    StartError,
    SupervisionError,
)

__all__ = [
    "ActorPool",
    "PooledActor",
    "blocking",
    "get_pool",
    "KILLED",
    "LatchFuture",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Backoff",
    "ChildError",
    "ChildInfo",
    "ChildSpec",
    "Clock",
    "Down",
    "Exit",
    "ManualClock",
    "MonotonicClock",
    "NoProcError",
    "NotWatchableError",
    "Outcome",
    "SpecError",
    "StartError",
    "SupFlags",
    "SupervisionError",
    "Supervisor",
    "WatchedActor",
    "add_restart",
    "backoff_delay",
    "check_childspec",
    "check_childspecs",
    "count_children",
    "delete_child",
    "demonitor",
    "describe",
    "exit_signal",
    "get_childspec",
    "has_exited",
    "intensity_exceeded",
    "is_normal_exit",
    "kill",
    "link",
    "monitor",
    "restart_child",
    "start_child",
    "start_children",
    "start_supervisor",
    "terminate_child",
    "tree",
    "unlink",
    "which_children",
]
