"""The one VM-state enum every driver maps its backend's states into."""

from __future__ import annotations

import enum

__all__ = ["VMState"]


class VMState(str, enum.Enum):
    """Where a VM is in its life, the same for every driver.

    A driver maps each backend state into exactly one of these; anything it
    cannot map is ``UNKNOWN`` (never an exception). Values are plain strings
    so a state crosses the wire as itself.
    """

    DEFINED = "defined"      #: known to the driver, never started (or start state unknown)
    PENDING = "pending"      #: being created or booting, not yet running (cloud providers)
    RUNNING = "running"      #: running (or booted and blocked on I/O)
    PAUSED = "paused"        #: suspended in memory; ``resume`` brings it back
    SHUTOFF = "shutoff"      #: stopped after having run (shutdown or destroy)
    CRASHED = "crashed"      #: stopped because the guest or its hypervisor process failed
    MIGRATING = "migrating"  #: moving to another host
    UNKNOWN = "unknown"      #: the backend reported something we cannot map

    @property
    def is_active(self) -> bool:
        """True when the VM holds host resources (running, paused, migrating, pending)."""
        return self in _ACTIVE

    @property
    def is_stopped(self) -> bool:
        """True when the VM is defined but not running (defined, shutoff, crashed)."""
        return self in _STOPPED


_ACTIVE = frozenset({VMState.PENDING, VMState.RUNNING, VMState.PAUSED, VMState.MIGRATING})
_STOPPED = frozenset({VMState.DEFINED, VMState.SHUTOFF, VMState.CRASHED})
