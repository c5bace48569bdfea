"""Every exception the ``supervisors`` package raises, in one place.

::

    SupervisionError                 base; .outcome, .recoverable, .supervisor, .child
    ├── SpecError (also ValueError)  invalid SupFlags / ChildSpec: .field, .value, .allowed
    ├── ChildError                   an API call's named OTP outcome: .outcome is one of
    │                                already_present, already_started, running,
    │                                restarting, not_found, simple_one_for_one; .ref
    ├── StartError                   a child (or a supervisor) failed to start: .reason
    ├── NoProcError                  the supervisor asked is not running (outcome noproc)
    └── NotWatchableError (TypeError) a ref that is not a WatchedActor's was given

Errors carry context as attributes (``supervisor=``, ``child=``) and a
``recoverable`` flag that restart logic may read: a failed start is worth
retrying, a malformed spec is not.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "ChildError",
    "NoProcError",
    "NotWatchableError",
    "Outcome",
    "SpecError",
    "StartError",
    "SupervisionError",
]


class Outcome(StrEnum):
    """OTP's named results of the supervisor API, as strings."""

    ALREADY_PRESENT = "already_present"
    ALREADY_STARTED = "already_started"
    RUNNING = "running"
    RESTARTING = "restarting"
    NOT_FOUND = "not_found"
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"
    INVALID_SPEC = "invalid_spec"
    FAILED_TO_START_CHILD = "failed_to_start_child"
    NOPROC = "noproc"
    NOT_WATCHABLE = "not_watchable"


class SupervisionError(Exception):
    """Base of every error raised by ``supervisors``.

    Args:
        message: what was wrong, where, and what is allowed.
        supervisor: the supervisor's name, when one is involved.
        child: the child id, when one is involved.
        recoverable: whether trying again may succeed.
    """

    outcome: Outcome | None = None
    recoverable: bool = False

    def __init__(
        self,
        message: str,
        *,
        supervisor: str | None = None,
        child: Any = None,
        recoverable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.supervisor = supervisor
        self.child = child
        if recoverable is not None:
            self.recoverable = recoverable


class SpecError(SupervisionError, ValueError):
    """A SupFlags or ChildSpec field holds a value that is not allowed.

    Raised before anything starts. ``field`` names the field, ``value`` is what
    was given and ``allowed`` describes what would have been accepted.
    """

    outcome = Outcome.INVALID_SPEC

    def __init__(self, field: str, value: Any, allowed: str, *, child: Any = None,
                 supervisor: str | None = None) -> None:
        where = f" of child {child!r}" if child is not None else ""
        super().__init__(
            f"invalid {field}{where}: {value!r}; allowed: {allowed}",
            supervisor=supervisor, child=child,
        )
        self.field = field
        self.value = value
        self.allowed = allowed


class ChildError(SupervisionError):
    """A supervisor API call answered with one of OTP's named outcomes.

    ``outcome`` says which (``already_present``, ``already_started``,
    ``running``, ``restarting``, ``not_found``, ``simple_one_for_one``);
    ``ref`` is the running child's ref for ``already_started``.
    """

    def __init__(self, outcome: Outcome, *, child: Any = None, supervisor: str | None = None,
                 ref: Any = None, detail: str = "") -> None:
        text = f"{outcome.value}: child {child!r} of supervisor {supervisor}"
        super().__init__(f"{text}{'; ' + detail if detail else ''}",
                         supervisor=supervisor, child=child)
        self.outcome = outcome
        self.ref = ref


class StartError(SupervisionError):
    """A child's ``start`` raised, returned something that is not a
    WatchedActor's ref, or the actor's ``on_start`` raised.

    ``reason`` is the exception (or exit reason) behind the failure. When a
    supervisor fails to start because one of its children did, ``child`` is that
    child's id and ``reason`` that child's reason.
    """

    outcome = Outcome.FAILED_TO_START_CHILD
    recoverable = True

    def __init__(self, reason: Any, *, child: Any = None, supervisor: str | None = None) -> None:
        who = f"child {child!r}" if child is not None else "actor"
        where = f" of supervisor {supervisor}" if supervisor else ""
        super().__init__(f"{who}{where} failed to start: {reason!r}",
                         supervisor=supervisor, child=child)
        self.reason = reason


class NoProcError(SupervisionError):
    """The supervisor (or actor) called is not running."""

    outcome = Outcome.NOPROC

    def __init__(self, ref: Any) -> None:
        super().__init__(f"noproc: {ref} is not running; start it first")
        self.ref = ref


class NotWatchableError(SupervisionError, TypeError):
    """Death watch and supervision need refs of ``WatchedActor`` subclasses."""

    outcome = Outcome.NOT_WATCHABLE

    def __init__(self, ref: Any, role: str = "actor") -> None:
        super().__init__(
            f"{role} {ref!r} is not a WatchedActor's ActorRef; "
            "allowed: refs returned by starting a supervisors.WatchedActor subclass"
        )
        self.ref = ref
