"""Exit reasons: OTP's atoms as strings, and which of them count as "normal"."""

from __future__ import annotations

from typing import Any

__all__ = ["KILLED", "NOCONNECTION", "NOPROC", "NORMAL", "SHUTDOWN", "describe", "is_normal_exit"]

NORMAL = "normal"
"""The actor finished: ``ref.stop()`` from outside, or ``stop_with(NORMAL)``."""
SHUTDOWN = "shutdown"
"""Its supervisor (or an intensity/auto shutdown) stopped it."""
NOPROC = "noproc"
"""The actor was already dead when watched."""
KILLED = "killed"
"""brutal_kill, or a shutdown timeout that expired: the actor was abandoned."""
NOCONNECTION = "noconnection"
"""The node holding the actor is unreachable (used by the remote runtime)."""


def is_normal_exit(reason: Any) -> bool:
    """Whether a transient child may stay down: OTP's normal, shutdown, {shutdown, _}.

    Args:
        reason: an exit reason.

    Returns:
        True for ``"normal"``, ``"shutdown"`` and ``("shutdown", detail)``.
    """
    if isinstance(reason, str):
        return reason in (NORMAL, SHUTDOWN)
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == SHUTDOWN


def describe(reason: Any) -> str:
    """Render a reason for logs: exceptions as ``Type('message')``."""
    if isinstance(reason, BaseException):
        return repr(reason)
    return str(reason)
