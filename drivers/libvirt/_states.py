"""libvirt domain states and lifecycle events mapped into Wind's. Pure functions."""

from __future__ import annotations

import libvirt

from .._events import EventKind
from .._state import VMState

__all__ = ["map_state", "map_event"]

_S = VMState


def map_state(state: int, reason: int) -> VMState:
    """Map ``virDomain.state()`` (state, reason) into :class:`VMState` (UNKNOWN if unmapped).

    A shut-off domain whose reason is "unknown" has never run (as far as
    libvirt remembers), so it is DEFINED; crashed or failed ones are CRASHED.
    """
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_SHUTDOWN):
        return _S.RUNNING
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return _S.MIGRATING if reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION else _S.PAUSED
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return _S.PAUSED
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN:
            return _S.DEFINED
        if reason in (libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, libvirt.VIR_DOMAIN_SHUTOFF_FAILED):
            return _S.CRASHED
        return _S.SHUTOFF
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return _S.CRASHED
    return _S.UNKNOWN


_STOPPED_DETAIL = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: (EventKind.STOPPED, "shutdown"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: (EventKind.STOPPED, "destroyed"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: (EventKind.CRASHED, "crashed"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: (EventKind.MIGRATED, "migrated"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: (EventKind.STOPPED, "saved"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: (EventKind.CRASHED, "failed"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: (EventKind.STOPPED, "from_snapshot"),
}


def map_event(event: int, detail: int) -> tuple[EventKind, str] | None:
    """Map a libvirt lifecycle (event, detail) to (kind, detail text); None to ignore it.

    Ignored: definition updates/renames and "shutting down" (a STOPPED follows).
    """
    if event == libvirt.VIR_DOMAIN_EVENT_DEFINED:
        return (EventKind.DEFINED, "added") if detail == libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED else None
    if event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
        return EventKind.REMOVED, "undefined"
    if event == libvirt.VIR_DOMAIN_EVENT_STARTED:
        return EventKind.STARTED, "migrated" if detail == libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED else "booted"
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        return EventKind.SUSPENDED, str(detail)
    if event == libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED:
        return EventKind.SUSPENDED, "pmsuspended"
    if event == libvirt.VIR_DOMAIN_EVENT_RESUMED:
        return EventKind.RESUMED, str(detail)
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return _STOPPED_DETAIL.get(detail, (EventKind.STOPPED, str(detail)))
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return EventKind.CRASHED, "crashed"
    return None
