"""What a VM should be: :class:`VMSpec` and its NICs (:class:`NicSpec`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import InvalidSpec

__all__ = ["NicSpec", "VMSpec", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


def check_name(name: str, *, what: str = "VM name") -> str:
    """Validate a VM (or host) name.

    Args:
        name: the name to check.
        what: used in the error message.

    Returns:
        The name itself.

    Raises:
        InvalidSpec: unless 1-63 characters of letters, digits, ``.``, ``_``
            and ``-``, starting with a letter or digit.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidSpec(
            f"{what} {name!r} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            vm=name if isinstance(name, str) else None,
        )
    return name


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class NicSpec:
    """One network interface of a VM.

    Attributes:
        network: the tenant network (or backend network) it belongs to.
        mac: fixed MAC address (``aa:bb:cc:dd:ee:ff``, lower case); None lets the backend choose.
        bridge: attach to this host bridge (libvirt ``<interface type='bridge'>``).
        tap: attach to this pre-created tap device (libvirt ``<interface type='ethernet'>``).
            ``bridge`` and ``tap`` are exclusive; with neither, the driver uses
            ``network`` as a backend network name.
    """

    network: str
    mac: str | None = None
    bridge: str | None = None
    tap: str | None = None

    def __post_init__(self) -> None:
        if not self.network or not isinstance(self.network, str):
            raise InvalidSpec(f"NIC network must be a non-empty string, got {self.network!r}")
        if self.mac is not None:
            if not isinstance(self.mac, str) or not _MAC.match(self.mac.lower()):
                raise InvalidSpec(f"NIC MAC {self.mac!r} is invalid: use six hex pairs like 52:54:00:12:34:56")
            object.__setattr__(self, "mac", self.mac.lower())
        if self.bridge and self.tap:
            raise InvalidSpec(
                f"NIC on network {self.network!r} names both bridge {self.bridge!r} and tap {self.tap!r}: "
                "give at most one"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the wire."""
        return {"network": self.network, "mac": self.mac, "bridge": self.bridge, "tap": self.tap}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NicSpec:
        """Inverse of :meth:`as_dict`."""
        return cls(data["network"], data.get("mac"), data.get("bridge"), data.get("tap"))


@dataclass(frozen=True)
class VMSpec:
    """Everything a driver needs to define one VM.

    Attributes:
        name: unique per driver (see :func:`check_name`).
        vcpus: virtual CPUs, at least 1.
        memory_mb: memory in MiB, at least 1.
        disk_gb: root disk size in GiB (0: no disk, e.g. a kernel+initramfs guest).
        image: disk image path or provider image id/name.
        kernel: kernel path for direct boot (then ``initrd``/``cmdline`` may be set).
        initrd: initramfs path, only with ``kernel``.
        cmdline: kernel command line, only with ``kernel``.
        nics: the VM's NICs in order.
        metadata: free-form labels (``tenant``, ``app``, ``component`` ...),
            kept by the driver and returned in :class:`VMInfo`.
        console_log: file the serial console is written to, where supported.
    """

    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int = 0
    image: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    nics: tuple[NicSpec, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    console_log: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        for attr, low in (("vcpus", 1), ("memory_mb", 1), ("disk_gb", 0)):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidSpec(f"{attr} must be an integer >= {low}, got {value!r}", vm=self.name)
        if (self.initrd or self.cmdline) and not self.kernel:
            raise InvalidSpec("initrd and cmdline need a kernel (direct boot)", vm=self.name)
        nics = tuple(n if isinstance(n, NicSpec) else NicSpec.from_dict(n) for n in self.nics)
        object.__setattr__(self, "nics", nics)
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))

    __hash__ = None  # type: ignore[assignment]  # metadata is a mapping

    def as_dict(self) -> dict[str, Any]:
        """Plain data (msgpack-able) for the wire."""
        return {
            "name": self.name, "vcpus": self.vcpus, "memory_mb": self.memory_mb,
            "disk_gb": self.disk_gb, "image": self.image, "kernel": self.kernel,
            "initrd": self.initrd, "cmdline": self.cmdline,
            "nics": [n.as_dict() for n in self.nics], "metadata": dict(self.metadata),
            "console_log": self.console_log,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VMSpec:
        """Inverse of :meth:`as_dict`."""
        fields = dict(data)
        fields["nics"] = tuple(NicSpec.from_dict(n) for n in fields.get("nics", ()))
        return cls(**fields)
