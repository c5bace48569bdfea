"""The Supervisor actor: OTP's supervisor behaviour on a WatchedActor.

All child bookkeeping happens in the supervisor's own thread, one message at a
time (child ``Down`` s, API calls, retry ticks), as in ``supervisor.erl``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from supervisors._actor import WatchedActor, running_actor
from supervisors._children import ChildInfo, ChildRecord, same_actor, which_order
from supervisors._clock import Clock, MonotonicClock
from supervisors._intensity import add_restart, backoff_delay, intensity_exceeded
from supervisors._reasons import SHUTDOWN, describe, is_normal_exit
from supervisors._shutdown import shutdown_many
from supervisors._spec import ChildSpec, SupFlags, check_childspec, check_childspecs, check_flags
from supervisors._watch import Down, Exit, await_start, demonitor, has_exited, link, monitor, unlink
from supervisors.errors import ChildError, NotWatchableError, Outcome, SpecError, StartError

__all__ = ["Supervisor"]


@dataclass(frozen=True)
class _TryAgain:
    key: Hashable
    counted: bool  # False for the delayed start after a backoff: already counted


@dataclass(frozen=True)
class Call:
    """An API request, answered through ``ask``."""

    op: str
    args: tuple[Any, ...] = ()


class Supervisor(WatchedActor):
    """A supervisor: starts, watches and restarts its children, with OTP semantics.

    Either pass ``flags`` and ``children`` (or use ``start_supervisor``), or
    subclass and override :meth:`init`.

    Its parent is the actor in whose thread it is created: the supervisor that
    starts it as a child, or the actor that calls ``start_supervisor`` (OTP's
    caller of ``start_link``); created outside any actor, it has none. It traps
    exits: its parent's exit stops it with the same reason, a child's exit is
    handled as that child's, and an exit from any other linked actor is ignored.

    Args:
        flags: the SupFlags.
        children: the ChildSpecs, in start order (exactly one for simple_one_for_one).
        name: used in logs and ``tree()``; defaults to the class name and urn.
        clock: a Clock (``ManualClock`` in tests); defaults to the monotonic clock.
        rng: random source for backoff jitter.
    """

    trap_exits = True

    def __init__(self, flags: SupFlags | None = None, children: list[ChildSpec] | None = None, *,
                 name: str | None = None, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self._given = (flags, list(children or []))
        self.name = name or f"{type(self).__name__}-{self.actor_urn.rsplit('-', 1)[-1][:8]}"
        self._clock: Clock = clock or MonotonicClock()
        self._rng = rng or random.Random()
        self._flags = SupFlags()
        self._template: ChildSpec | None = None
        # By key, in start order (a dict keeps insertion order): which_children's order comes
        # from it, and finding a child by id or dynamic key is O(1) instead of a scan.
        self._children: dict[Hashable, ChildRecord] = {}
        self._by_urn: dict[Any, ChildRecord] = {}  # dynamic children by their (last) ref's urn
        self._by_monitor: dict[str, ChildRecord] = {}
        self._linked: set[str] = set()
        self._parent = running_actor()
        self._restarts: tuple[float, ...] = ()
        self._keys = itertools.count()
        self._starts = itertools.count(1)
        self._log = structlog.get_logger("wind.supervisors").bind(supervisor=self.name)

    # -- the behaviour -----------------------------------------------------------

    def init(self) -> tuple[SupFlags, list[ChildSpec]]:
        """Return the flags and child specs; override in a subclass.

        Runs in the supervisor's thread, from ``on_start``. Raising makes the
        supervisor fail to start with that exception as reason.
        """
        flags, children = self._given
        if flags is None:
            raise SpecError("flags", None, "SupFlags given to the constructor, or init() overridden",
                            supervisor=self.name)
        return flags, children

    def on_start(self) -> None:
        """Validate ``init()``'s result and start the children in order.

        Runs in the supervisor's thread. If a child fails to start, those already
        started are stopped in reverse order and the supervisor fails with a
        StartError naming the child and its reason.
        """
        flags, specs = self.init()
        self._flags = check_flags(flags)
        specs = list(specs)
        try:
            check_childspecs(specs, flags.auto_shutdown)
            if flags.strategy == "simple_one_for_one" and len(specs) != 1:
                raise SpecError("children", len(specs), "exactly one child spec for simple_one_for_one")
        except SpecError as exc:
            exc.supervisor = self.name
            raise
        if flags.strategy == "simple_one_for_one":
            self._template = specs[0]
            return
        self._children = {spec.id: ChildRecord(key=spec.id, spec=spec) for spec in specs}
        for child in list(self._children.values()):
            error = self._start(child)
            if error is not None:
                self._terminate_all()
                raise StartError(error, child=child.key, supervisor=self.name)
            if child.ref is None and child.spec.restart == "temporary":
                self._remove(child)  # ignored and never to be restarted

    def on_stop(self) -> None:
        """Stop every child in reverse start order. Runs in the supervisor's thread."""
        self._terminate_all()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """The supervisor itself crashed: stop its children. Runs in its thread."""
        self._terminate_all()

    def on_receive(self, message: Any) -> Any:
        """Handle child exits, exit signals, retry ticks and API calls."""
        if isinstance(message, Down):
            self._child_down(message)
        elif isinstance(message, Exit):
            self._exit(message)
        elif isinstance(message, _TryAgain):
            self._try_again(message)
        elif isinstance(message, Call):
            return getattr(self, f"_call_{message.op}")(*message.args)
        else:
            self._log.warning("unexpected_message", message=repr(message))
        return None

    # -- starting ----------------------------------------------------------------

    @property
    def _simple(self) -> bool:
        return self._flags.strategy == "simple_one_for_one"

    def _start(self, child: ChildRecord) -> BaseException | None:
        """Start one child and watch it; return the failure, or None."""
        launched = self._launch(child)
        if launched is None or isinstance(launched, BaseException):
            return launched
        return self._settle(child, *launched)

    def _launch(self, child: ChildRecord) -> tuple[pykka.ActorRef[Any], Any] | BaseException | None:
        """Call the child's start and monitor what it returns, without waiting for its on_start.

        Returns:
            ``(ref, monitor id)``; the failure; or None when start returned None (OTP's ignore).
        """
        try:
            ref = child.spec.start(*child.args)
        except Exception as exc:  # any failure of the user's start is a start error
            self._log.error("start_error", child=child.key, reason=describe(exc))
            return exc
        if ref is None:  # OTP's "ignore": not started, not an error, and not restarting either
            child.restarting, child.cancel_timer = False, None
            self._log.info("child_ignored", child=child.key)
            return None
        try:
            return ref, monitor(ref, self.actor_ref)
        except NotWatchableError as exc:
            if isinstance(ref, pykka.ActorRef):
                ref.stop(block=False)
            self._log.error("start_error", child=child.key, reason=describe(exc))
            return exc

    def _settle(self, child: ChildRecord, ref: pykka.ActorRef[Any], mid: Any) -> BaseException | None:
        """Wait for a launched child's on_start, then link it and record it as running."""
        error = await_start(ref)
        if error is not None:
            demonitor(mid)
            self._log.error("start_error", child=child.key, reason=describe(error))
            return error
        self._linked.add(ref.actor_urn)
        link(self.actor_ref, ref)
        child.ref, child.monitor_id, child.restarting = ref, mid, False
        child.cancel_timer = None
        child.started_at = self._clock.now()
        child.started_seq = next(self._starts)
        self._by_monitor[mid] = child
        if child.last_ref is not None:
            self._by_urn.pop(getattr(child.last_ref, "actor_urn", child.last_ref), None)
        self._by_urn[ref.actor_urn] = child
        # A simple_one_for_one supervisor may start thousands of children (an agent's VMs), each
        # of which reports itself; as OTP's progress reports, those starts are debug detail.
        report = self._log.debug if self._simple else self._log.info
        report("child_started", child=child.key, actor=str(ref), restarts=child.restarts)
        return None

    # -- stopping ----------------------------------------------------------------

    def _terminate(self, children: list[ChildRecord]) -> None:
        """Stop running children, in the order given, waiting for each (OTP's shutdown/1)."""
        for child in children:
            child.cancel_pending()
            if child.ref is None:
                continue
            ref = child.ref
            self._forget(child)
            [reason] = shutdown_many([ref], child.spec.effective_shutdown)
            self._report_shutdown(child, reason)

    def _forget(self, child: ChildRecord) -> None:
        ref = child.ref
        assert ref is not None and child.monitor_id is not None
        demonitor(child.monitor_id)
        self._by_monitor.pop(child.monitor_id, None)
        self._linked.discard(ref.actor_urn)
        if self._by_urn.get(ref.actor_urn) is child:
            del self._by_urn[ref.actor_urn]
        unlink(self.actor_ref, ref)
        child.ref = child.monitor_id = None

    def _report_shutdown(self, child: ChildRecord, reason: Any) -> None:
        expected = reason in ("killed", SHUTDOWN) if child.spec.effective_shutdown == "brutal_kill" \
            else reason == SHUTDOWN
        if not expected and not (child.spec.restart != "permanent" and is_normal_exit(reason)):
            self._log.error("shutdown_error", child=child.key, reason=describe(reason))
        else:
            (self._log.debug if self._simple else self._log.info)(
                "child_shutdown", child=child.key, reason=describe(reason))

    def _terminate_all(self) -> None:
        """Stop every child in reverse start order (dynamic children all at once)."""
        if self._simple and self._template is not None:
            running = [c for c in self._children.values() if c.ref is not None]
            for child in self._children.values():
                child.cancel_pending()
            refs = []
            for child in running:
                refs.append(child.ref)
                self._forget(child)
            reasons = shutdown_many(refs, self._template.effective_shutdown)
            for child, reason in zip(running, reasons, strict=True):
                self._report_shutdown(child, reason)
            self._children, self._by_urn = {}, {}
            return
        self._terminate(list(reversed(self._children.values())))

    def _give_up(self, event: str, *, level: str = "error", **info: Any) -> None:
        """Stop all children and exit with reason shutdown, so the parent sees it."""
        getattr(self._log, level)(event, **info)
        self._terminate_all()
        self.stop_with(SHUTDOWN)

    # -- child exits -------------------------------------------------------------

    def _child_down(self, down: Down) -> None:
        child = self._by_monitor.pop(down.monitor_id, None)
        if child is None:
            return  # a Down from a monitor already dropped (terminated on purpose)
        child.ref = child.monitor_id = None
        child.last_ref = down.ref
        reason, spec = down.reason, child.spec
        normal = is_normal_exit(reason)
        if spec.restart == "permanent" or (spec.restart == "transient" and not normal):
            self._log.error("child_terminated", child=child.key, reason=describe(reason),
                            restarts=child.restarts)
            self._reset_backoff(child)
            self._restart(child, counted=True)
            return
        if not normal:
            self._log.error("child_terminated", child=child.key, reason=describe(reason),
                            restarts=child.restarts)
        else:
            self._log.info("child_exited", child=child.key, reason=describe(reason))
        self._del_child(child)
        self._auto_shutdown(child)

    def _del_child(self, child: ChildRecord) -> None:
        """OTP's del_child: temporary and dynamic children go; others stay, not running."""
        child.cancel_pending()
        if self._simple or child.spec.restart == "temporary":
            self._remove(child)

    def _auto_shutdown(self, child: ChildRecord) -> None:
        mode = self._flags.auto_shutdown
        if mode == "never" or not child.spec.significant:
            return
        if mode == "all_significant" and self._significant_left():
            return
        self._give_up("auto_shutdown", level="info", child=child.key, auto_shutdown=mode)

    def _significant_left(self) -> bool:
        """OTP's do_auto_shutdown(all_significant): is a significant child still there?

        A child being restarted counts (its pid is ``{restarting, _}``, not
        undefined). Dynamic children all share the template, so any left counts.
        """
        if self._simple:
            return bool(self._children)
        return any(c.spec.significant and (c.ref is not None or c.restarting) for c in self._children.values())

    def _exit(self, message: Exit) -> None:
        """A linked actor exited: follow the parent; a child's Down does the work; ignore others."""
        if self._parent is not None and same_actor(message.ref, self._parent):
            # Like a gen_server trapping exits: the parent's exit stops it, whatever the reason.
            self._log.info("parent_exited", reason=describe(message.reason))
            self.stop_with(message.reason)
            return
        urn = getattr(message.ref, "actor_urn", None)
        if urn in self._linked:
            self._linked.discard(urn)
            return
        # OTP: an 'EXIT' from a pid that is neither parent nor child changes nothing.
        self._log.info("exit_ignored", sender=str(message.ref), reason=describe(message.reason))

    # -- restarting --------------------------------------------------------------

    def _reset_backoff(self, child: ChildRecord) -> None:
        backoff = child.spec.backoff
        if backoff is None:
            return
        reset_after = backoff.maximum if backoff.reset_after is None else backoff.reset_after
        if self._clock.now() - child.started_at >= reset_after:
            child.backoff_attempt = 0

    def _restart(self, child: ChildRecord, *, counted: bool) -> None:
        """OTP's restart/2: count it, then restart by strategy (or give up)."""
        if counted:
            self._restarts = add_restart(self._restarts, self._clock.now(), self._flags.period)
            if intensity_exceeded(self._restarts, self._flags.intensity):
                self._del_child(child)
                self._give_up("reached_max_restart_intensity", child=child.key,
                              intensity=self._flags.intensity, period=self._flags.period)
                return
        group = self._stop_group(child)
        if counted and child.spec.backoff is not None:
            delay = backoff_delay(child.spec.backoff, child.backoff_attempt, self._rng)
            child.backoff_attempt += 1
            child.restarting = True
            self._log.info("restart_backoff", child=child.key, delay_s=round(delay, 6))
            me = self.actor_ref
            child.cancel_timer = self._clock.call_later(
                delay, lambda: _tell_quietly(me, _TryAgain(child.key, counted=False)))
            return
        self._start_group(child, group)

    def _stop_group(self, child: ChildRecord) -> list[ChildRecord]:
        """Stop the siblings the strategy restarts with ``child``; return the group, in order."""
        strategy = self._flags.strategy
        if strategy in ("one_for_one", "simple_one_for_one"):
            return [child]
        if strategy == "one_for_all":
            group = list(self._children.values())
        else:  # rest_for_one
            siblings = list(self._children.values())
            group = siblings[siblings.index(child):]
        others = [c for c in group if c is not child]
        self._terminate(list(reversed(others)))
        for c in others:
            if c.spec.restart == "temporary":  # never restarted, even by a sibling's failure
                self._remove(c)
        return [c for c in group if self._children.get(c.key) is c]

    def _start_group(self, child: ChildRecord, group: list[ChildRecord]) -> None:
        for member in group:
            if member.ref is not None:
                continue
            restarted = member.restarts + 1
            member.restarts = restarted
            error = self._start(member)
            if error is not None:
                # try_again_restart: leave the rest down, answer calls meanwhile, retry.
                member.restarting = True
                self._log.error("restart_failed", child=member.key, reason=describe(error),
                                restarts=restarted)
                _tell_quietly(self.actor_ref, _TryAgain(member.key, counted=True))
                return
            if member.ref is not None:  # else its start said ignore, and it was logged
                self._log.info("child_restarted", child=member.key, restarts=restarted,
                               strategy=self._flags.strategy)

    def _try_again(self, message: _TryAgain) -> None:
        child = self._record(message.key)
        if child is None or not child.restarting:
            return  # terminated, deleted or restarted meanwhile
        child.cancel_timer = None
        self._restart(child, counted=message.counted)

    # -- API (answered through ask; errors go back to the caller) ----------------

    def _record(self, key: Hashable) -> ChildRecord | None:
        """The child with this key (its id; a generated key for a dynamic child)."""
        try:
            return self._children.get(key)
        except TypeError:  # an unhashable key is no child's id
            return None

    def _find_dynamic(self, ref: pykka.ActorRef[Any]) -> ChildRecord | None:
        """OTP's find_child for simple_one_for_one: by pid, or by ``{restarting, OldPid}``."""
        child = self._by_urn.get(getattr(ref, "actor_urn", ref))
        return child if child is not None and child.holds(ref) and self._children.get(child.key) is child \
            else None

    def _remove(self, child: ChildRecord) -> None:
        """Forget a child record, and its entries in the ref index."""
        if self._children.get(child.key) is child:
            del self._children[child.key]
        for ref in (child.ref, child.last_ref):
            urn = getattr(ref, "actor_urn", ref)
            if ref is not None and self._by_urn.get(urn) is child:
                del self._by_urn[urn]

    def _error(self, outcome: Outcome, child: Any, **kw: Any) -> ChildError:
        return ChildError(outcome, child=child, supervisor=self.name, **kw)

    def _call_start_child(self, arg: Any) -> pykka.ActorRef[Any] | None:
        if self._simple:
            assert self._template is not None
            child = ChildRecord(key=("dynamic", next(self._keys)), spec=self._template, args=tuple(arg))
            self._children[child.key] = child
            error = self._start(child)
            if error is not None or child.ref is None:
                self._remove(child)
                if error is not None:
                    raise StartError(error, supervisor=self.name) from error
            return child.ref
        spec = check_childspec(arg, self._flags.auto_shutdown)
        existing = self._record(spec.id)
        if existing is not None:
            if existing.ref is not None:
                raise self._error(Outcome.ALREADY_STARTED, spec.id, ref=existing.ref)
            raise self._error(Outcome.ALREADY_PRESENT, spec.id)
        child = ChildRecord(key=spec.id, spec=spec)
        error = self._start(child)
        if error is not None:
            raise StartError(error, child=spec.id, supervisor=self.name) from error
        if child.ref is not None or spec.restart != "temporary":
            self._children[child.key] = child
        return child.ref

    def _call_start_children(self, arglists: Any) -> list[Any]:
        # simple_one_for_one only (checked by the API). Every child is launched before any is
        # waited for, so their on_starts run side by side on the pool: a batch costs one
        # on_start's latency, not the sum of them. Each child's outcome is its own, as if started
        # by start_child in this order.
        if not self._simple or self._template is None:
            raise SpecError("strategy", self._flags.strategy, "simple_one_for_one (start_children "
                            "starts children of its template; use start_child for a ChildSpec)",
                            supervisor=self.name)
        launched = []
        for args in arglists:
            child = ChildRecord(key=("dynamic", next(self._keys)), spec=self._template, args=tuple(args))
            self._children[child.key] = child
            launched.append((child, self._launch(child)))
        results: list[Any] = []
        for child, outcome in launched:
            error = self._settle(child, *outcome) if isinstance(outcome, tuple) else outcome
            if error is not None or child.ref is None:
                self._remove(child)
            results.append(StartError(error, supervisor=self.name) if error is not None else child.ref)
        return results

    def _call_terminate_child(self, key: Any) -> None:
        if self._simple and not isinstance(key, pykka.ActorRef):
            raise self._error(Outcome.SIMPLE_ONE_FOR_ONE, key,
                              detail="terminate dynamic children by their ref")
        # As OTP's find_child: by ref only for simple_one_for_one; elsewhere a ref is
        # just an id that no child has, so nothing is stopped.
        child = self._find_dynamic(key) if self._simple else self._record(key)
        if child is None:
            if self._simple and has_exited(key):
                return None  # OTP: a dead pid that is no child has nothing left to stop
            raise self._error(Outcome.NOT_FOUND, key)
        self._terminate([child])
        self._del_child(child)
        return None

    def _static_child(self, key: Any, op: str) -> ChildRecord:
        if self._simple:
            raise self._error(Outcome.SIMPLE_ONE_FOR_ONE, key, detail=f"{op} is not allowed")
        child = self._record(key)
        if child is None:
            raise self._error(Outcome.NOT_FOUND, key)
        if child.restarting:
            raise self._error(Outcome.RESTARTING, key)
        if child.ref is not None:
            raise self._error(Outcome.RUNNING, key, ref=child.ref)
        return child

    def _call_restart_child(self, key: Any) -> pykka.ActorRef[Any] | None:
        child = self._static_child(key, "restart_child")
        error = self._start(child)
        if error is not None:
            raise StartError(error, child=key, supervisor=self.name) from error
        return child.ref

    def _call_delete_child(self, key: Any) -> None:
        child = self._static_child(key, "delete_child")
        self._remove(child)

    def _call_get_childspec(self, key: Any) -> ChildSpec:
        if self._simple:
            return self._dynamic_childspec(key)
        child = self._record(key)
        if child is None:
            raise self._error(Outcome.NOT_FOUND, key)
        return child.spec

    def _dynamic_childspec(self, key: Any) -> ChildSpec:
        """OTP's find_child for simple_one_for_one, which finds the template's spec too."""
        template = self._template
        assert template is not None
        if not isinstance(key, pykka.ActorRef):
            if key == template.id:  # the template is the one child spec OTP keeps
                return template
            raise self._error(Outcome.NOT_FOUND, key)
        child = self._find_dynamic(key)
        if child is not None:
            return child.spec
        if has_exited(key):  # OTP: a dead pid that is no child answers the template
            return template
        raise self._error(Outcome.NOT_FOUND, key)

    def _call_which_children(self) -> list[ChildInfo]:
        return [ChildInfo(None if self._simple else c.key, c.ref, c.spec.type, c.status)
                for c in which_order(list(self._children.values()), self._simple)]

    def _call_count_children(self) -> dict[str, int]:
        children = list(self._children.values())
        if self._simple:
            assert self._template is not None
            sups = len(children) if self._template.type == "supervisor" else 0
            return {"specs": 1, "active": sum(c.ref is not None for c in children),
                    "supervisors": sups, "workers": len(children) - sups}
        return {
            "specs": len(children),
            "active": sum(c.ref is not None and c.ref.is_alive() for c in children),
            "supervisors": sum(c.spec.type == "supervisor" for c in children),
            "workers": sum(c.spec.type == "worker" for c in children),
        }

    def _call_describe(self) -> dict[str, Any]:
        flags = self._flags
        return {
            "name": self.name,
            "strategy": flags.strategy,
            "intensity": flags.intensity,
            "period": flags.period,
            "auto_shutdown": flags.auto_shutdown,
            "restarts_in_period": len(self._restarts),
            "children": [
                {"id": None if self._simple else c.key, "ref": c.ref, "type": c.spec.type,
                 "status": c.status, "restart": c.spec.restart, "restarts": c.restarts}
                for c in self._children.values()
            ],
        }

    def _call_ping(self) -> None:
        return None


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass  # the supervisor is gone; nothing left to retry
