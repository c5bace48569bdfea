"""What a VM is, as a driver observed it: :class:`VMInfo`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ._spec import NicSpec
from ._state import VMState

__all__ = ["VMInfo"]


@dataclass(frozen=True)
class VMInfo:
    """One VM in a driver's inventory.

    Attributes:
        name: the VM's name (unique per driver).
        state: its state, mapped into :class:`VMState`.
        vcpus: virtual CPUs.
        memory_mb: memory in MiB.
        disk_gb: root disk in GiB.
        host: the host it is placed on, for multi-host endpoints.
        id: the backend's own id (libvirt UUID, cloud instance id), if any.
        nics: its NICs, with MACs filled in where the backend chose them.
        metadata: the labels given in the spec.
        driver: name of the driver that reported it.
    """

    name: str
    state: VMState
    vcpus: int
    memory_mb: int
    disk_gb: int = 0
    host: str | None = None
    id: str | None = None
    nics: tuple[NicSpec, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    driver: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", VMState(self.state))
        object.__setattr__(self, "nics", tuple(self.nics))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    __hash__ = None  # type: ignore[assignment]  # metadata is a mapping

    def with_state(self, state: VMState) -> VMInfo:
        """A copy in another state."""
        return replace(self, state=state)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (msgpack-able) for the wire."""
        return {
            "name": self.name, "state": self.state.value, "vcpus": self.vcpus,
            "memory_mb": self.memory_mb, "disk_gb": self.disk_gb, "host": self.host,
            "id": self.id, "nics": [n.as_dict() for n in self.nics],
            "metadata": dict(self.metadata), "driver": self.driver,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VMInfo:
        """Inverse of :meth:`as_dict`; an unknown state string becomes UNKNOWN."""
        fields = dict(data)
        try:
            fields["state"] = VMState(fields["state"])
        except ValueError:
            fields["state"] = VMState.UNKNOWN
        fields["nics"] = tuple(NicSpec.from_dict(n) for n in fields.get("nics", ()))
        return cls(**fields)
