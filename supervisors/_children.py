"""The supervisor's record of one child, and plain-data views of it."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pykka

from supervisors._spec import ChildSpec

__all__ = ["ChildInfo", "ChildRecord"]


class ChildInfo(NamedTuple):
    """One row of ``which_children``, like OTP's ``{Id, Child, Type, Modules}``.

    Attributes:
        id: the child id (None for simple_one_for_one children, OTP's undefined).
        ref: the running child's ref, or None.
        type: "worker" or "supervisor".
        status: "running", "restarting" (a restart is pending or being retried)
            or "undefined" (not running: terminated, or a transient/permanent
            child that stayed down).
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
    backoff_attempt: int = 0
    cancel_timer: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        if self.ref is not None:
            return "running"
        return "restarting" if self.restarting else "undefined"

    def cancel_pending(self) -> None:
        self.restarting = False
        if self.cancel_timer is not None:
            self.cancel_timer()
            self.cancel_timer = None
