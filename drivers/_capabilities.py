"""What a driver can do, declared as data (like Nomad's driver Capabilities)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Capabilities", "OPERATION_CAPABILITY"]

#: Which capability flag each optional operation needs. Operations not listed
#: here (define, start, shutdown, destroy, undefine, list, info, capacity,
#: subscribe) are mandatory for every driver.
OPERATION_CAPABILITY: dict[str, str] = {
    "suspend": "suspend",
    "resume": "suspend",
    "reboot": "reboot",
    "migrate": "live_migration",
    "snapshot": "snapshots",
    "console_log": "console",
    "attach_nic": "nic_attach",
}


@dataclass(frozen=True)
class Capabilities:
    """The optional features a driver offers. Check before calling; an
    operation whose flag is False raises :class:`drivers.errors.NotSupported`.

    Attributes:
        suspend: ``suspend``/``resume`` (pause in memory).
        reboot: ``reboot``.
        live_migration: ``migrate(name, dest_host)`` between hosts of this endpoint.
        snapshots: ``snapshot(name, tag)``.
        console: ``console_log(name)`` gives a serial console log path.
        nic_attach: ``attach_nic(name, nic)`` on a defined VM.
        push_events: lifecycle events come from the backend as they happen
            (False: the driver polls, with the latency it documents).
        per_host_capacity: ``capacity().hosts`` breaks the endpoint down by host.
    """

    suspend: bool = False
    reboot: bool = False
    live_migration: bool = False
    snapshots: bool = False
    console: bool = False
    nic_attach: bool = False
    push_events: bool = False
    per_host_capacity: bool = False

    def allows(self, operation: str) -> bool:
        """Whether ``operation`` (a Driver method name) is available.

        Args:
            operation: e.g. ``"suspend"``, ``"migrate"`` or ``"start"``.

        Returns:
            True for mandatory operations and for optional ones whose flag is set.
        """
        flag = OPERATION_CAPABILITY.get(operation)
        return True if flag is None else bool(getattr(self, flag))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the wire."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        """Inverse of :meth:`as_dict`; unknown keys (from newer peers) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: bool(v) for k, v in data.items() if k in names})
