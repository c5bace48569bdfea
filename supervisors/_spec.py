"""Supervisor flags and child specs as frozen data, and their validation.

Defaults live here and only here (OTP's): strategy one_for_one, intensity 1,
period 5 s, auto_shutdown never; restart permanent, type worker, shutdown 5 s
for a worker and infinity for a supervisor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from supervisors.errors import SpecError

__all__ = ["Backoff", "ChildSpec", "SupFlags", "check_childspec", "check_childspecs", "check_flags"]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")
RESTARTS = ("permanent", "transient", "temporary")
TYPES = ("worker", "supervisor")
WORKER_SHUTDOWN = 5.0


@dataclass(frozen=True)
class SupFlags:
    """How a supervisor restarts its children.

    Attributes:
        strategy: one_for_one | one_for_all | rest_for_one | simple_one_for_one.
        intensity: at most this many restarts ...
        period: ... within this many seconds; one more and the supervisor gives up.
        auto_shutdown: never | any_significant | all_significant.
    """

    strategy: str = "one_for_one"
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: str = "never"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between restarts of one child (off by default).

    The n-th consecutive restart waits ``min(maximum, initial * multiplier**n)``
    seconds, stretched by a random factor in ``[1, 1 + jitter]``. The count goes
    back to zero once the child has run for ``reset_after`` seconds (default:
    ``maximum``). Restarts still count towards the supervisor's intensity.
    """

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    reset_after: float | None = None


@dataclass(frozen=True)
class ChildSpec:
    """One child of a supervisor.

    Attributes:
        id: unique among its siblings (any hashable).
        start: a callable returning a started ``pykka.ActorRef`` of a WatchedActor
            (or a Supervisor), or None to say "ignore" (OTP's ``ignore``). With
            simple_one_for_one, ``start_child(sup, *args)`` calls ``start(*args)``.
        restart: permanent (always restarted), transient (restarted unless it exits
            normal / shutdown / ("shutdown", detail)), temporary (never restarted).
        shutdown: "brutal_kill", a timeout in seconds, or "infinity"; None means
            5.0 for a worker and "infinity" for a supervisor.
        type: worker | supervisor.
        significant: its exit may shut the supervisor down (see auto_shutdown).
        backoff: a Backoff to delay this child's restarts, or None.
    """

    id: Hashable
    start: Callable[..., Any]
    restart: str = "permanent"
    shutdown: float | str | None = None
    type: str = "worker"
    significant: bool = False
    backoff: Backoff | None = None

    @property
    def effective_shutdown(self) -> float | str:
        """The shutdown with the type's default filled in."""
        if self.shutdown is not None:
            return self.shutdown
        return "infinity" if self.type == "supervisor" else WORKER_SHUTDOWN


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_flags(flags: Any) -> SupFlags:
    """Validate supervisor flags.

    Args:
        flags: a SupFlags.

    Returns:
        The flags, unchanged.

    Raises:
        SpecError: naming the field, the value and what is allowed.
    """
    if not isinstance(flags, SupFlags):
        raise SpecError("flags", flags, "a supervisors.SupFlags")
    if flags.strategy not in STRATEGIES:
        raise SpecError("strategy", flags.strategy, " | ".join(STRATEGIES))
    if not isinstance(flags.intensity, int) or isinstance(flags.intensity, bool) or flags.intensity < 0:
        raise SpecError("intensity", flags.intensity, "an int >= 0")
    if not _is_number(flags.period) or flags.period <= 0:
        raise SpecError("period", flags.period, "a number of seconds > 0")
    if flags.auto_shutdown not in AUTO_SHUTDOWNS:
        raise SpecError("auto_shutdown", flags.auto_shutdown, " | ".join(AUTO_SHUTDOWNS))
    return flags


def _check_backoff(backoff: Any, child: Any) -> None:
    if backoff is None:
        return
    if not isinstance(backoff, Backoff):
        raise SpecError("backoff", backoff, "None or a supervisors.Backoff", child=child)
    for name in ("initial", "maximum"):
        value = getattr(backoff, name)
        if not _is_number(value) or value < 0:
            raise SpecError(f"backoff.{name}", value, "a number of seconds >= 0", child=child)
    if backoff.maximum < backoff.initial:
        raise SpecError("backoff.maximum", backoff.maximum, f">= backoff.initial ({backoff.initial})",
                        child=child)
    if not _is_number(backoff.multiplier) or backoff.multiplier < 1:
        raise SpecError("backoff.multiplier", backoff.multiplier, "a number >= 1", child=child)
    if not _is_number(backoff.jitter) or backoff.jitter < 0:
        raise SpecError("backoff.jitter", backoff.jitter, "a number >= 0", child=child)
    if backoff.reset_after is not None and (not _is_number(backoff.reset_after) or backoff.reset_after < 0):
        raise SpecError("backoff.reset_after", backoff.reset_after, "None or seconds >= 0", child=child)


def check_childspec(spec: Any, auto_shutdown: str = "never") -> ChildSpec:
    """Validate one child spec (OTP's check_childspec).

    Args:
        spec: a ChildSpec.
        auto_shutdown: the supervisor's auto_shutdown flag (significant children
            need it to be other than "never").

    Returns:
        The spec, unchanged.

    Raises:
        SpecError: naming the field, the value and what is allowed.
    """
    if not isinstance(spec, ChildSpec):
        raise SpecError("child spec", spec, "a supervisors.ChildSpec")
    cid = spec.id
    try:
        hash(cid)
    except TypeError:
        raise SpecError("id", cid, "a hashable value") from None
    if not callable(spec.start):
        raise SpecError("start", spec.start, "a callable returning a started ActorRef", child=cid)
    if spec.restart not in RESTARTS:
        raise SpecError("restart", spec.restart, " | ".join(RESTARTS), child=cid)
    if spec.type not in TYPES:
        raise SpecError("type", spec.type, " | ".join(TYPES), child=cid)
    shutdown = spec.shutdown
    if shutdown is not None and shutdown not in ("brutal_kill", "infinity") and not (
        _is_number(shutdown) and shutdown >= 0
    ):
        raise SpecError("shutdown", shutdown, '"brutal_kill" | seconds >= 0 | "infinity" | None', child=cid)
    if not isinstance(spec.significant, bool):
        raise SpecError("significant", spec.significant, "True | False", child=cid)
    if spec.significant and auto_shutdown == "never":
        raise SpecError("significant", True, 'False while auto_shutdown is "never"', child=cid)
    if spec.significant and spec.restart == "permanent":
        raise SpecError("significant", True, 'False for a permanent child (use transient or temporary)',
                        child=cid)
    _check_backoff(spec.backoff, cid)
    return spec


def check_childspecs(specs: Iterable[Any], auto_shutdown: str = "never") -> None:
    """Validate a list of child specs, as OTP's ``supervisor:check_childspecs/2``.

    Args:
        specs: the child specs, in start order.
        auto_shutdown: the supervisor's auto_shutdown flag.

    Raises:
        SpecError: for the first invalid spec, or a duplicate id.
    """
    seen: set[Any] = set()
    for spec in specs:
        check_childspec(spec, auto_shutdown)
        if spec.id in seen:
            raise SpecError("id", spec.id, "an id unique among the supervisor's children", child=spec.id)
        seen.add(spec.id)
