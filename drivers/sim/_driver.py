"""SimDriver: a Driver connected to a :class:`SimHypervisor`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from .._capabilities import Capabilities
from .._capacity import Capacity
from .._driver import Driver
from .._info import VMInfo
from .._spec import NicSpec, VMSpec
from ..errors import ConnectionLost, InvalidSpec
from ._faults import SimFaults
from ._hypervisor import SimHypervisor

__all__ = ["SimDriver"]

T = TypeVar("T")

_FULL = Capabilities(suspend=True, reboot=True, live_migration=True, snapshots=True, console=True,
                     nic_attach=True, push_events=True, per_host_capacity=True)


class SimDriver(Driver):
    """The simulated driver: what scale and fault-injection tests use.

    Configured as data. With ``endpoint``, every SimDriver of that endpoint
    name in the process connects to the same :class:`SimHypervisor` (created
    from this config on first use), so a restarted driver actor finds its VMs
    again; without it, each driver gets a private hypervisor.

    Args:
        name: the driver's name in events and errors (default: endpoint or ``"sim"``).
        endpoint: name of a process-wide simulated hypervisor to share.
        hypervisor: connect to this hypervisor object instead.
        hosts: host count or host list (see :class:`SimHypervisor`).
        host_cpus: cpus per host.
        host_memory_mb: memory per host.
        host_disk_gb: disk per host.
        latency: seconds per operation, or ``{op: seconds}``.
        faults: :class:`SimFaults` or a mapping of its fields.
        capabilities: ``{flag: bool}`` overrides, e.g. ``{"suspend": False}``
            to simulate a driver without suspend. Live migration needs two hosts.

    Events for operations a caller makes are delivered on the caller's thread;
    scheduled crashes come from the simulator's scheduler thread.
    """

    kind = "sim"

    def __init__(
        self,
        *,
        name: str | None = None,
        endpoint: str | None = None,
        hypervisor: SimHypervisor | None = None,
        hosts: int | Sequence[Mapping[str, Any]] = 1,
        host_cpus: int = 16,
        host_memory_mb: int = 65536,
        host_disk_gb: int = 1000,
        latency: float | Mapping[str, float] = 0.0,
        faults: SimFaults | Mapping[str, Any] | None = None,
        capabilities: Mapping[str, bool] | None = None,
    ) -> None:
        super().__init__(name=name or endpoint or (hypervisor.name if hypervisor else None))
        config = dict(hosts=hosts, host_cpus=host_cpus, host_memory_mb=host_memory_mb,
                      host_disk_gb=host_disk_gb, latency=latency, faults=faults)
        if hypervisor is not None:
            self.hypervisor = hypervisor
        elif endpoint is not None:
            self.hypervisor = SimHypervisor.named(endpoint, **config)
        else:
            self.hypervisor = SimHypervisor(self.name, **config)
        caps = replace(_FULL, live_migration=len(self.hypervisor.capacity().hosts) > 1)
        try:
            self.capabilities = replace(caps, **dict(capabilities or {}))
        except TypeError as exc:
            raise InvalidSpec(f"unknown capability in {dict(capabilities or {})}: {exc}", driver=self.name) from exc
        self._connected = False
        self._state_lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether connect() succeeded and the connection has not dropped since."""
        return self._connected

    def _lost(self, error: ConnectionLost) -> None:
        # Called by the hypervisor's drop_connections, on its thread.
        with self._state_lock:
            was, self._connected = self._connected, False
        if was:
            self.notify_connection_lost(error)

    def _call(self, op: str, vm: str | None, fn: Callable[[], T]) -> T:
        if not self.capabilities.allows(op):
            raise self.not_supported(op, vm)
        if not self._connected:
            raise ConnectionLost(f"{op}: the {self.name!r} driver is not connected; call connect() first",
                                 driver=self.name, vm=vm, op=op)
        self.hypervisor.before(op, self, vm)
        if not self._connected:  # dropped while we were hanging or sleeping
            raise ConnectionLost(f"{op}: connection to {self.name!r} dropped", driver=self.name, vm=vm, op=op)
        return fn()

    # --- Driver ------------------------------------------------------------

    def connect(self) -> None:
        """Connect to the simulated hypervisor (applies ``auth_failure``/``unreachable``)."""
        if self._connected:
            return
        self.hypervisor.attach(self)
        self._connected = True

    def close(self) -> None:
        """Disconnect (idempotent)."""
        self._connected = False
        self.hypervisor.detach(self)

    def define(self, spec: VMSpec) -> VMInfo:
        """See :meth:`Driver.define`."""
        return self._call("define", spec.name, lambda: self.hypervisor.define(spec, self.name))

    def start(self, name: str) -> None:
        """See :meth:`Driver.start`; applies ``start_error`` and schedules ``crash_after``."""
        self._call("start", name, lambda: self.hypervisor.start(name, self.name))

    def shutdown(self, name: str) -> None:
        """See :meth:`Driver.shutdown` (immediate in the simulator)."""
        self._call("shutdown", name, lambda: self.hypervisor.simple("shutdown", name, self.name))

    def destroy(self, name: str) -> None:
        """See :meth:`Driver.destroy`."""
        self._call("destroy", name, lambda: self.hypervisor.simple("destroy", name, self.name))

    def suspend(self, name: str) -> None:
        """See :meth:`Driver.suspend`."""
        self._call("suspend", name, lambda: self.hypervisor.simple("suspend", name, self.name))

    def resume(self, name: str) -> None:
        """See :meth:`Driver.resume`."""
        self._call("resume", name, lambda: self.hypervisor.simple("resume", name, self.name))

    def reboot(self, name: str) -> None:
        """See :meth:`Driver.reboot`."""
        self._call("reboot", name, lambda: self.hypervisor.simple("reboot", name, self.name))

    def undefine(self, name: str) -> None:
        """See :meth:`Driver.undefine`."""
        self._call("undefine", name, lambda: self.hypervisor.simple("undefine", name, self.name))

    def list(self) -> list[VMInfo]:
        """See :meth:`Driver.list`."""
        return self._call("list", None, lambda: self.hypervisor.list(self.name))

    def info(self, name: str) -> VMInfo:
        """See :meth:`Driver.info`."""
        return self._call("info", name, lambda: self.hypervisor.info(name, self.name))

    def capacity(self) -> Capacity:
        """See :meth:`Driver.capacity` (always with the per-host breakdown)."""
        return self._call("capacity", None, self.hypervisor.capacity)

    def migrate(self, name: str, dest_host: str) -> VMInfo:
        """See :meth:`Driver.migrate` (needs at least two hosts)."""
        return self._call("migrate", name, lambda: self.hypervisor.migrate(name, dest_host, self.name))

    def snapshot(self, name: str, tag: str) -> None:
        """See :meth:`Driver.snapshot`."""
        self._call("snapshot", name, lambda: self.hypervisor.snapshot(name, tag, self.name))

    def console_log(self, name: str) -> str:
        """See :meth:`Driver.console_log`; the simulator writes a "booted" line there on start."""
        return self._call("console_log", name, lambda: self.hypervisor.console_log(name, self.name))

    def attach_nic(self, name: str, nic: NicSpec) -> VMInfo:
        """See :meth:`Driver.attach_nic`."""
        return self._call("attach_nic", name, lambda: self.hypervisor.attach_nic(name, nic, self.name))
