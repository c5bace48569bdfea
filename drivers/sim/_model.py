"""Pure rules of the simulated hypervisor: state transitions and placement.

No threads, no clocks: Hypothesis drives these directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._capacity import Resources
from .._events import EventKind
from .._state import VMState

__all__ = ["TRANSITIONS", "next_state", "event_for", "place", "needs"]

_S = VMState
_STOPPED = frozenset({_S.DEFINED, _S.SHUTOFF, _S.CRASHED})

#: op -> (states it is allowed from, state after, event emitted or None).
#: ``None`` as the state after means "unchanged" (reboot, migrate, snapshot).
TRANSITIONS: dict[str, tuple[frozenset[VMState], VMState | None, EventKind | None]] = {
    "start": (_STOPPED, _S.RUNNING, EventKind.STARTED),
    "shutdown": (frozenset({_S.RUNNING}), _S.SHUTOFF, EventKind.STOPPED),
    "destroy": (frozenset({_S.RUNNING, _S.PAUSED, _S.PENDING, _S.MIGRATING}), _S.SHUTOFF, EventKind.STOPPED),
    "suspend": (frozenset({_S.RUNNING}), _S.PAUSED, EventKind.SUSPENDED),
    "resume": (frozenset({_S.PAUSED}), _S.RUNNING, EventKind.RESUMED),
    "reboot": (frozenset({_S.RUNNING}), None, None),
    "undefine": (_STOPPED, None, EventKind.REMOVED),
    "migrate": (frozenset({_S.RUNNING, _S.PAUSED}), None, EventKind.MIGRATED),
    "crash": (frozenset({_S.RUNNING, _S.PAUSED}), _S.CRASHED, EventKind.CRASHED),
    "snapshot": (frozenset(VMState) - {_S.UNKNOWN, _S.MIGRATING}, None, None),
    "attach_nic": (frozenset(VMState) - {_S.UNKNOWN, _S.MIGRATING}, None, None),
}


def next_state(state: VMState, op: str) -> VMState | None:
    """The state after ``op``, or None when ``op`` is not allowed in ``state``.

    Args:
        state: the VM's current state.
        op: a key of :data:`TRANSITIONS`.

    Returns:
        The new state (the same one for ops that keep it), or None if not allowed.
    """
    allowed, after, _ = TRANSITIONS[op]
    if state not in allowed:
        return None
    return state if after is None else after


def event_for(op: str) -> EventKind | None:
    """The lifecycle event ``op`` emits when it succeeds (None: no event)."""
    return TRANSITIONS[op][2]


def needs(vcpus: int, memory_mb: int, disk_gb: int) -> Resources:
    """The resources a VM holds while active."""
    return Resources(vcpus, memory_mb, disk_gb)


def place(
    want: Resources,
    totals: Mapping[str, Resources],
    used: Mapping[str, Resources],
    *,
    order: Iterable[str] | None = None,
) -> str | None:
    """First host, in ``order`` (default: ``totals``' order), where ``want`` fits.

    Args:
        want: what the VM needs.
        totals: each host's total resources.
        used: each host's used resources (missing hosts use nothing).
        order: host names to try, e.g. a preferred host first.

    Returns:
        The chosen host's name, or None when no host has room.
    """
    empty = Resources()
    for host in order if order is not None else totals:
        total = totals.get(host)
        if total is not None and (used.get(host, empty) + want).fits_in(total):
            return host
    return None
