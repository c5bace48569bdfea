"""Fault injection for the simulated hypervisor, configured as data (like Nomad's mock driver)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..errors import InvalidSpec

__all__ = ["SimFaults"]

_OPS = frozenset({
    "connect", "define", "start", "shutdown", "destroy", "suspend", "resume", "reboot",
    "undefine", "list", "info", "capacity", "migrate", "snapshot", "console_log", "attach_nic",
})


@dataclass(frozen=True)
class SimFaults:
    """What goes wrong in a simulated hypervisor. All off by default.

    Attributes:
        start_error: if set, ``start`` of a matching VM raises
            :class:`~drivers.errors.BackendError` with this message.
        start_error_recoverable: the ``recoverable`` flag of that error.
        start_error_times: how many starts fail before they succeed (None: all).
        crash_after: a matching VM crashes this many seconds after it starts
            (state CRASHED, event ``crashed``).
        vms: fnmatch pattern selecting the VMs start_error and crash_after apply to.
        unreachable: ``connect`` and every call raise ConnectionLost.
        auth_failure: ``connect`` raises AuthenticationFailed.
        hang_ops: operations that block when called (simulating a stuck backend).
        hang_seconds: how long a hang lasts before the call raises
            OperationTimeout; None blocks until ``SimHypervisor.release_hangs()``
            and then the call proceeds normally.
    """

    start_error: str | None = None
    start_error_recoverable: bool = False
    start_error_times: int | None = None
    crash_after: float | None = None
    vms: str = "*"
    unreachable: bool = False
    auth_failure: bool = False
    hang_ops: frozenset[str] = frozenset()
    hang_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hang_ops", frozenset(self.hang_ops))
        unknown = self.hang_ops - _OPS
        if unknown:
            raise InvalidSpec(f"hang_ops names unknown operations {sorted(unknown)}; allowed: {sorted(_OPS)}")
        if self.crash_after is not None and self.crash_after < 0:
            raise InvalidSpec(f"crash_after must be >= 0 seconds, got {self.crash_after}")

    def applies_to(self, vm: str) -> bool:
        """Whether the VM-level faults (start_error, crash_after) apply to ``vm``."""
        return fnmatchcase(vm, self.vms)

    @classmethod
    def coerce(cls, value: SimFaults | Mapping[str, Any] | None) -> SimFaults:
        """Accept a SimFaults, a plain mapping (from a config file) or None."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - names
        if unknown:
            raise InvalidSpec(f"unknown sim fault settings {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**value)

    def replace(self, **changes: Any) -> SimFaults:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)
