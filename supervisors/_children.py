"""The supervisor's record of one child, and plain-data views of it."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pykka

from supervisors._spec import ChildSpec

__all__ = ["ChildInfo", "ChildRecord", "same_actor", "which_order"]


class ChildInfo(NamedTuple):
    """One row of ``which_children``, like OTP's ``{Id, Child, Type, Modules}``.

    Attributes:
        id: the child id (None for simple_one_for_one children, OTP's undefined).
        ref: the running child's ref, or None.
        type: "worker" or "supervisor".
        status: "running", "restarting" (a restart is pending or being retried)
            or "undefined" (not running: terminated, a transient/permanent
            child that stayed down, or one whose start returned None).
    """

    id: Hashable
    ref: pykka.ActorRef[Any] | None
    type: str
    status: str


@dataclass(eq=False)
class ChildRecord:
    """What a supervisor knows about one child; owned by the supervisor's thread."""

    key: Hashable
    spec: ChildSpec
    args: tuple[Any, ...] = ()
    ref: pykka.ActorRef[Any] | None = None
    monitor_id: str | None = None
    restarting: bool = False
    restarts: int = 0
    started_at: float = 0.0
    started_seq: int = 0  # when it last started, among its siblings' starts
    last_ref: pykka.ActorRef[Any] | None = None  # the ref it had before its exit
    backoff_attempt: int = 0
    cancel_timer: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        if self.ref is not None:
            return "running"
        return "restarting" if self.restarting else "undefined"

    def holds(self, ref: Any) -> bool:
        """Whether ``ref`` is this child: its running ref, or while it is being
        restarted the ref of the actor that exited (OTP's ``{restarting, OldPid}``)."""
        if self.ref is not None:
            return same_actor(self.ref, ref)
        return self.restarting and self.last_ref is not None and same_actor(self.last_ref, ref)

    def cancel_pending(self) -> None:
        self.restarting = False
        if self.cancel_timer is not None:
            self.cancel_timer()
            self.cancel_timer = None


def same_actor(a: Any, b: Any) -> bool:
    """Whether two refs name one actor; a remote sender (not an ActorRef) compares by equality."""
    return a is b or getattr(a, "actor_urn", a) == getattr(b, "actor_urn", b)


_STATUS_RANK = {"undefined": 0, "running": 1, "restarting": 2}


def which_order(children: list[ChildRecord], simple: bool) -> list[ChildRecord]:
    """The order OTP 25's ``which_children`` lists children in (a pure function).

    Args:
        children: the supervisor's records, in start order.
        simple: whether the supervisor is simple_one_for_one.

    Returns:
        For a static supervisor, newest first: OTP keeps the ids in a list with the
        last started at its head (a child added by ``start_child`` goes first, a
        restart keeps the child's place). For simple_one_for_one, OTP lists its map
        of dynamic children, keyed by pid, in key order: Erlang orders the keys of
        a map of up to 32 entries by term order, where a local pid follows the ones
        created before it and the ``{restarting, OldPid}`` key of a child being
        restarted follows every pid (and the ``undefined`` key of a restart that was
        ignored comes before them). So: undefined, then running oldest start first,
        then restarting. Beyond 32 children, and for temporary ones (kept in a
        set), OTP's order is a hash order; this keeps the small-map order.
    """
    if not simple:
        return list(reversed(children))
    return sorted(children, key=lambda c: (_STATUS_RANK[c.status], c.started_seq))
