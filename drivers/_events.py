"""Messages a driver pushes to its subscribers: :class:`VMEvent` and :class:`Inventory`."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._capacity import Capacity
from ._info import VMInfo
from ._state import VMState

__all__ = ["EventKind", "VMEvent", "Inventory", "EVENT_VERSION"]

#: Version of the VMEvent/Inventory message layout on the wire.
EVENT_VERSION = 1


class EventKind(str, enum.Enum):
    """What happened to a VM."""

    DEFINED = "defined"
    STARTED = "started"
    STOPPED = "stopped"      #: shut down or destroyed on request
    CRASHED = "crashed"      #: stopped without being asked to
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    MIGRATED = "migrated"    #: ``detail`` names the destination host
    REMOVED = "removed"      #: undefined


#: The state a VM is in right after each kind of event.
STATE_AFTER: dict[EventKind, VMState] = {
    EventKind.DEFINED: VMState.DEFINED,
    EventKind.STARTED: VMState.RUNNING,
    EventKind.STOPPED: VMState.SHUTOFF,
    EventKind.CRASHED: VMState.CRASHED,
    EventKind.SUSPENDED: VMState.PAUSED,
    EventKind.RESUMED: VMState.RUNNING,
    EventKind.MIGRATED: VMState.RUNNING,
}


@dataclass(frozen=True)
class VMEvent:
    """A lifecycle event, pushed to subscribers as a message.

    Attributes:
        kind: what happened.
        vm: the VM's name.
        driver: the driver (endpoint) name that saw it.
        detail: backend-specific detail (reason, destination host ...).
        timestamp: wall-clock seconds when the driver saw it.
        host: the VM's host after the event, where known.
        version: message layout version (:data:`EVENT_VERSION`).
    """

    kind: EventKind
    vm: str
    driver: str
    detail: str = ""
    timestamp: float = field(default_factory=time.time)
    host: str | None = None
    version: int = EVENT_VERSION

    def __post_init__(self) -> None:
        if type(self.kind) is not EventKind:  # built on every event's path: skip the enum call when typed
            object.__setattr__(self, "kind", EventKind(self.kind))

    def as_dict(self) -> dict[str, Any]:
        """Plain data (msgpack-able) for the wire."""
        return {"kind": self.kind.value, "vm": self.vm, "driver": self.driver, "detail": self.detail,
                "timestamp": self.timestamp, "host": self.host, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VMEvent:
        """Inverse of :meth:`as_dict`."""
        return cls(**dict(data))


@dataclass(frozen=True)
class Inventory:
    """A full snapshot of a driver's VMs and capacity.

    A driver actor sends one to every subscriber when it subscribes and
    after every (re)connect, so a subscriber that missed events while the
    connection was down can reconcile against it.

    Attributes:
        driver: the driver (endpoint) name.
        vms: every VM the driver knows.
        capacity: the endpoint's capacity.
        generation: increments on every (re)connect of the driver actor.
        timestamp: wall-clock seconds when it was taken.
        version: message layout version.
    """

    driver: str
    vms: tuple[VMInfo, ...]
    capacity: Capacity
    generation: int = 0
    timestamp: float = field(default_factory=time.time)
    version: int = EVENT_VERSION

    def vm(self, name: str) -> VMInfo | None:
        """The VM of that name in this snapshot, or None."""
        return next((v for v in self.vms if v.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (msgpack-able) for the wire."""
        return {"driver": self.driver, "vms": [v.as_dict() for v in self.vms],
                "capacity": self.capacity.as_dict(), "generation": self.generation,
                "timestamp": self.timestamp, "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        """Inverse of :meth:`as_dict`."""
        return cls(data["driver"], tuple(VMInfo.from_dict(v) for v in data["vms"]),
                   Capacity.from_dict(data["capacity"]), data.get("generation", 0),
                   data.get("timestamp", 0.0), data.get("version", EVENT_VERSION))
