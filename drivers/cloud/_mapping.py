"""Pure rules of the cloud driver: provider states, size choice, and the
events a change of observed states means.

No libcloud objects and no I/O here, so Hypothesis can drive every rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._events import EventKind
from .._state import VMState

__all__ = ["STATE_MAP", "Size", "map_state", "smallest_fitting", "events_between"]

#: libcloud ``NodeState`` values (plain strings) -> VMState. Anything else,
#: including states a future libcloud adds, maps to UNKNOWN.
STATE_MAP: Mapping[str, VMState] = {
    "running": VMState.RUNNING,
    "rebooting": VMState.RUNNING,      # still holds its resources and comes back by itself
    "reconfiguring": VMState.RUNNING,
    "updating": VMState.RUNNING,
    "normal": VMState.RUNNING,
    "pending": VMState.PENDING,
    "starting": VMState.PENDING,
    "stopping": VMState.RUNNING,       # not off until the provider says stopped
    "stopped": VMState.SHUTOFF,
    "suspended": VMState.PAUSED,
    "paused": VMState.PAUSED,
    "error": VMState.CRASHED,
    "migrating": VMState.MIGRATING,
}


def map_state(provider_state: object) -> VMState:
    """The VMState for a libcloud node state (``NodeState`` or its string).

    Args:
        provider_state: ``node.state`` as libcloud reports it.

    Returns:
        The mapped state; UNKNOWN for anything not in :data:`STATE_MAP`.
    """
    return STATE_MAP.get(str(provider_state).lower(), VMState.UNKNOWN)


@dataclass(frozen=True)
class Size:
    """A provider size (flavor / instance type) as plain data.

    Attributes:
        id: the provider's id (``t2.micro``, a flavor id).
        vcpus: virtual CPUs (0 when the provider does not say).
        memory_mb: RAM in MiB.
        disk_gb: root disk in GiB (0: provider does not say / EBS-only).
        price: hourly price when known, used only to break ties.
    """

    id: str
    vcpus: int
    memory_mb: int
    disk_gb: int = 0
    price: float = 0.0


def smallest_fitting(sizes: Iterable[Size], vcpus: int, memory_mb: int, disk_gb: int,
                     *, disk_matters: bool = True) -> Size | None:
    """The smallest size that holds the request.

    "Smallest" orders by memory, then vcpus, then disk, then price, then id, so
    the choice is deterministic. A size whose vcpus is 0 (unknown) is counted
    as 1 vcpu.

    Args:
        sizes: what the provider offers.
        vcpus, memory_mb, disk_gb: what the VM needs.
        disk_matters: False for providers whose root disk is sized separately
            from the instance type (EC2's EBS), so disk never rules a size out.

    Returns:
        The chosen size, or None when none fits.
    """
    fitting = [
        s for s in sizes
        if max(s.vcpus, 1) >= vcpus and s.memory_mb >= memory_mb
        and (not disk_matters or disk_gb == 0 or s.disk_gb >= disk_gb)
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda s: (s.memory_mb, max(s.vcpus, 1), s.disk_gb, s.price, s.id))


def events_between(before: Mapping[str, VMState], after: Mapping[str, VMState]) -> list[tuple[EventKind, str]]:
    """The lifecycle events that explain going from one observation to the next.

    Args:
        before: VM name -> state at the previous observation.
        after: VM name -> state now (a VM missing here was removed).

    Returns:
        ``(kind, vm)`` pairs in a stable order (by VM name). Transitions into
        PENDING, MIGRATING or UNKNOWN emit nothing: they are not a lifecycle
        event, and the next settled state will be.
    """
    events: list[tuple[EventKind, str]] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if new is None:
            events.append((EventKind.REMOVED, name))
            continue
        if old == new:
            continue
        kind = _event_for(old, new)
        if kind is not None:
            events.append((kind, name))
    return events


def _event_for(old: VMState | None, new: VMState) -> EventKind | None:
    if new is VMState.RUNNING:
        return EventKind.RESUMED if old is VMState.PAUSED else EventKind.STARTED
    if new is VMState.PAUSED:
        return EventKind.SUSPENDED
    if new is VMState.SHUTOFF:
        return EventKind.STOPPED if old is not None else None
    if new is VMState.CRASHED:
        return EventKind.CRASHED
    if new is VMState.DEFINED and old is None:
        return EventKind.DEFINED
    return None
