"""The supervisor API: module functions taking a supervisor's ActorRef first."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pykka

from supervisors._children import ChildInfo
from supervisors._clock import Clock
from supervisors._spec import ChildSpec, SupFlags, check_childspecs, check_flags
from supervisors._supervisor import Call, Supervisor
from supervisors.errors import NoProcError, NotWatchableError, SpecError

__all__ = [
    "count_children",
    "delete_child",
    "get_childspec",
    "restart_child",
    "start_child",
    "start_children",
    "start_supervisor",
    "terminate_child",
    "tree",
    "which_children",
]


def start_supervisor(flags: SupFlags, children: list[ChildSpec], *, name: str | None = None,
                     clock: Clock | None = None) -> pykka.ActorRef[Supervisor]:
    """Validate, then start a supervisor and all its children, in order.

    Returns once every child has started (like OTP's ``start_link``).

    Args:
        flags: the supervisor's SupFlags.
        children: its ChildSpecs in start order (exactly one for simple_one_for_one).
        name: a name for logs and ``tree()``.
        clock: a Clock; ``ManualClock()`` in tests.

    Returns:
        The running supervisor's ref.

    Raises:
        SpecError: a flag or spec is invalid; nothing was started.
        StartError: a child failed to start (``.child``, ``.reason``); the children
            already started were stopped in reverse order.
    """
    check_flags(flags)
    check_childspecs(children, flags.auto_shutdown)
    if flags.strategy == "simple_one_for_one" and len(children) != 1:
        raise SpecError("children", len(children), "exactly one child spec for simple_one_for_one")
    return Supervisor.start_sync(flags, children, name=name, clock=clock)


def _call(sup: pykka.ActorRef[Any], op: str, *args: Any) -> Any:
    if not isinstance(sup, pykka.ActorRef) or not issubclass(sup.actor_class, Supervisor):
        raise NotWatchableError(sup, "supervisor")
    try:
        return sup.ask(Call(op, args))
    except pykka.ActorDeadError:
        raise NoProcError(sup) from None


def start_child(sup: pykka.ActorRef[Any], *spec_or_args: Any) -> pykka.ActorRef[Any] | None:
    """Start a new child.

    ``start_child(sup, spec)`` adds and starts a ChildSpec; for a
    simple_one_for_one supervisor ``start_child(sup, *extra_args)`` calls the
    template's ``start(*extra_args)``.

    Returns:
        The child's ref, or None if its ``start`` returned None (ignore).

    Raises:
        ChildError: outcome ``already_started`` (``.ref`` is the running child) or
            ``already_present`` (the id exists, not running).
        SpecError: the spec is invalid.
        StartError: the child failed to start.
        NoProcError: the supervisor is not running.
    """
    if len(spec_or_args) == 1 and isinstance(spec_or_args[0], ChildSpec):
        return _call(sup, "start_child", spec_or_args[0])
    return _call(sup, "start_child", spec_or_args)


def start_children(sup: pykka.ActorRef[Any], arglists: list[tuple[Any, ...]]) -> list[Any]:
    """Start many children of a simple_one_for_one supervisor in one call.

    Each ``args`` of ``arglists`` is what ``start_child(sup, *args)`` would get. The children's
    ``on_start`` hooks run side by side, so starting N children costs about one start's latency
    and one round trip to the supervisor instead of N (an agent starting thousands of VM actors).

    Returns:
        One entry per ``args``, in order: the child's ref, None (its start returned None), or
        the :class:`~supervisors.errors.StartError` it failed with (the others still started).

    Raises:
        SpecError: the supervisor is not simple_one_for_one.
        NoProcError: the supervisor is not running.
    """
    arglists = [tuple(args) for args in arglists]
    if not arglists:
        return []
    return _call(sup, "start_children", arglists)


def terminate_child(sup: pykka.ActorRef[Any], child: Hashable | pykka.ActorRef[Any]) -> None:
    """Stop a child (by id; by ref for simple_one_for_one) and keep its spec.

    Temporary and dynamic children are forgotten as well. For simple_one_for_one,
    the ref of a child being restarted (the actor that exited) finds it too and
    cancels its restart, and the ref of an actor that has exited and is no child
    is accepted with nothing to do (as OTP).

    Raises:
        ChildError: outcome ``not_found`` (also for a ref given to a supervisor
            that is not simple_one_for_one: OTP takes it for an unknown id, and
            stops nothing), or ``simple_one_for_one`` when an id is given to a
            simple_one_for_one supervisor.
    """
    _call(sup, "terminate_child", child)


def restart_child(sup: pykka.ActorRef[Any], child_id: Hashable) -> pykka.ActorRef[Any] | None:
    """Start again a child that was terminated (its spec was kept).

    Returns:
        The new ref (None if its start returned None).

    Raises:
        ChildError: outcome ``running``, ``restarting``, ``not_found`` or
            ``simple_one_for_one``.
        StartError: it failed to start (it stays not running).
    """
    return _call(sup, "restart_child", child_id)


def delete_child(sup: pykka.ActorRef[Any], child_id: Hashable) -> None:
    """Forget the spec of a child that is not running.

    Raises:
        ChildError: outcome ``running``, ``restarting``, ``not_found`` or
            ``simple_one_for_one``.
    """
    _call(sup, "delete_child", child_id)


def get_childspec(sup: pykka.ActorRef[Any], child: Hashable | pykka.ActorRef[Any]) -> ChildSpec:
    """Return a child's spec: by id; for simple_one_for_one by ref, or the template by its id.

    As OTP's ``find_child``: for simple_one_for_one, the ref of an actor that has
    exited and is no child answers the template too.

    Raises:
        ChildError: outcome ``not_found`` (also for a ref given to a supervisor
            that is not simple_one_for_one).
    """
    return _call(sup, "get_childspec", child)


def which_children(sup: pykka.ActorRef[Any]) -> list[ChildInfo]:
    """List the children, including those restarting or not running, in OTP 25's order.

    Newest first: a child added by ``start_child`` comes first, a restarted one
    keeps its place (this is the order they are stopped in, the reverse of the
    start order). For simple_one_for_one, the order of OTP's map of dynamic
    children keyed by pid: oldest start first (a restarted child has a new ref,
    so it moves last), those being restarted after them.
    """
    return _call(sup, "which_children")


def count_children(sup: pykka.ActorRef[Any]) -> dict[str, int]:
    """Count children as OTP does: ``specs``, ``active``, ``supervisors``, ``workers``."""
    return _call(sup, "count_children")


def tree(sup: pykka.ActorRef[Any]) -> dict[str, Any]:
    """Describe the whole live tree under ``sup`` as plain data (dicts, lists, str, int).

    Returns:
        ``{"name", "urn", "strategy", "intensity", "period", "auto_shutdown",
        "restarts_in_period", "children": [...]}``, the children in start order
        (not ``which_children``'s newest first), where each child is ``{"id",
        "urn", "actor", "type", "status", "restart", "restarts"}`` and a running
        supervisor child also has its own ``"tree"``.
    """
    info = _call(sup, "describe")
    info["urn"] = sup.actor_urn
    for child in info["children"]:
        ref = child.pop("ref")
        child["urn"] = ref.actor_urn if ref is not None else None
        child["actor"] = ref.actor_class.__name__ if ref is not None else None
        if ref is not None and issubclass(ref.actor_class, Supervisor):
            try:
                child["tree"] = tree(ref)
            except NoProcError:
                child["status"] = "exiting"
    return info
