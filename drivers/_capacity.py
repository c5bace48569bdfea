"""How much an endpoint can hold and how much is in use, per host and in total."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Resources", "HostCapacity", "Capacity"]


@dataclass(frozen=True)
class Resources:
    """An amount of cpus, memory (MiB) and disk (GiB). Supports ``+``, ``-`` and ``fits_in``."""

    cpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_mb + other.memory_mb, self.disk_gb + other.disk_gb)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory_mb - other.memory_mb, self.disk_gb - other.disk_gb)

    def fits_in(self, other: Resources) -> bool:
        """True when every amount here is at most the same amount in ``other``."""
        return self.cpus <= other.cpus and self.memory_mb <= other.memory_mb and self.disk_gb <= other.disk_gb

    def as_dict(self) -> dict[str, int]:
        """Plain data for the wire."""
        return {"cpus": self.cpus, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """Inverse of :meth:`as_dict`."""
        return cls(int(data["cpus"]), int(data["memory_mb"]), int(data["disk_gb"]))


@dataclass(frozen=True)
class HostCapacity:
    """One host's capacity.

    Attributes:
        host: the host's name.
        total: what the host has.
        used: what active VMs placed on it hold.
    """

    host: str
    total: Resources
    used: Resources = Resources()

    @property
    def free(self) -> Resources:
        """``total - used`` (may go negative when the backend over-commits)."""
        return self.total - self.used

    # Flat accessors, so callers can write ``cap.cpus_total`` as the contract reads.
    cpus = property(lambda self: self.total.cpus, doc="total cpus")
    memory_mb = property(lambda self: self.total.memory_mb, doc="total memory in MiB")
    disk_gb = property(lambda self: self.total.disk_gb, doc="total disk in GiB")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the wire."""
        return {"host": self.host, "total": self.total.as_dict(), "used": self.used.as_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostCapacity:
        """Inverse of :meth:`as_dict`."""
        return cls(data["host"], Resources.from_dict(data["total"]), Resources.from_dict(data["used"]))


@dataclass(frozen=True)
class Capacity:
    """An endpoint's capacity: the aggregate and, where known, a per-host breakdown.

    Build it with :meth:`from_hosts` (aggregate computed once) or, for a
    provider that only reports totals, ``Capacity(total=..., used=...)``.

    Attributes:
        total: sum of every host's total.
        used: sum of every host's used.
        hosts: per-host breakdown (empty when the backend does not tell).
    """

    total: Resources
    used: Resources = Resources()
    hosts: tuple[HostCapacity, ...] = field(default=())

    @classmethod
    def from_hosts(cls, hosts: Iterable[HostCapacity]) -> Capacity:
        """Aggregate a per-host breakdown.

        Args:
            hosts: every host of the endpoint.

        Returns:
            A Capacity whose ``total``/``used`` are the sums over ``hosts``.
        """
        hosts = tuple(hosts)
        cpus_t = mem_t = disk_t = cpus_u = mem_u = disk_u = 0
        for h in hosts:  # one pass: thousands of hosts must stay cheap
            cpus_t += h.total.cpus
            mem_t += h.total.memory_mb
            disk_t += h.total.disk_gb
            cpus_u += h.used.cpus
            mem_u += h.used.memory_mb
            disk_u += h.used.disk_gb
        return cls(Resources(cpus_t, mem_t, disk_t), Resources(cpus_u, mem_u, disk_u), hosts)

    @property
    def free(self) -> Resources:
        """``total - used``."""
        return self.total - self.used

    def host(self, name: str) -> HostCapacity:
        """The breakdown entry for one host.

        Raises:
            KeyError: no host of that name.
        """
        for h in self.hosts:
            if h.host == name:
                return h
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the wire."""
        return {"total": self.total.as_dict(), "used": self.used.as_dict(),
                "hosts": [h.as_dict() for h in self.hosts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capacity:
        """Inverse of :meth:`as_dict`."""
        return cls(Resources.from_dict(data["total"]), Resources.from_dict(data["used"]),
                   tuple(HostCapacity.from_dict(h) for h in data.get("hosts", ())))
