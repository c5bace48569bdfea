"""The simulated hypervisor: hosts, VMs, capacity, faults. Drivers connect to it."""

from __future__ import annotations

import bisect
import itertools
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._capacity import Capacity, HostCapacity, Resources
from .._events import EventKind
from .._info import VMInfo
from .._spec import NicSpec, VMSpec, check_name
from .._state import VMState
from ..errors import (
    AuthenticationFailed, BackendError, CapacityExceeded, ConnectionLost, InvalidSpec, InvalidState,
    OperationTimeout, VMExists, VMNotFound,
)
from . import _model
from ._faults import SimFaults
from ._scheduler import schedule

if TYPE_CHECKING:
    from ._driver import SimDriver

__all__ = ["SimHypervisor"]

_mac_counter = itertools.count(1)


def _new_mac() -> str:
    n = next(_mac_counter)
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


@dataclass
class _VM:
    spec: VMSpec
    id: str
    state: VMState = VMState.DEFINED
    host: str | None = None
    nics: tuple[NicSpec, ...] = ()
    snapshots: list[str] = field(default_factory=list)
    generation: int = 0  # bumps on every start, so a stale scheduled crash is ignored

    def info(self, driver: str) -> VMInfo:
        s = self.spec
        return VMInfo(s.name, self.state, s.vcpus, s.memory_mb, s.disk_gb, self.host, self.id,
                      self.nics, s.metadata, driver)


class SimHypervisor:
    """An in-memory hypervisor of any size, shared by the drivers connected to it.

    It outlives its connections, so a driver actor that restarts and
    reconnects finds the same VMs (as it would with a real endpoint).
    Events go to every connected driver, as libvirt's do.

    Args:
        name: the endpoint's name.
        hosts: a host count (named ``host-0000`` ...) or a list of mappings
            ``{"name", "cpus", "memory_mb", "disk_gb"}``.
        host_cpus: cpus per host when ``hosts`` is a count.
        host_memory_mb: memory per host when ``hosts`` is a count.
        host_disk_gb: disk per host when ``hosts`` is a count.
        latency: seconds every operation takes, or ``{op: seconds}``.
        faults: a :class:`SimFaults` or the same as a mapping.
    """

    _registry: dict[str, SimHypervisor] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        name: str = "sim",
        *,
        hosts: int | Sequence[Mapping[str, Any]] = 1,
        host_cpus: int = 16,
        host_memory_mb: int = 65536,
        host_disk_gb: int = 1000,
        latency: float | Mapping[str, float] = 0.0,
        faults: SimFaults | Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._totals: dict[str, Resources] = {}
        if isinstance(hosts, int):
            if hosts < 1:
                raise InvalidSpec(f"a simulated hypervisor needs at least one host, got {hosts}")
            width = max(4, len(str(hosts - 1)))
            for i in range(hosts):
                self._totals[f"host-{i:0{width}d}"] = Resources(host_cpus, host_memory_mb, host_disk_gb)
        else:
            for h in hosts:
                host = check_name(h["name"], what="host name")
                self._totals[host] = Resources(int(h["cpus"]), int(h["memory_mb"]), int(h.get("disk_gb", 0)))
        self._used: dict[str, Resources] = {h: Resources() for h in self._totals}
        # First fit must not scan every full host for every start (750 hosts, 10,000 VMs: the
        # scan was most of a deploy's time): hosts with no CPU or memory left can take no VM,
        # so only the others, by position, are tried.
        self._position = {h: i for i, h in enumerate(self._totals)}
        self._names = list(self._totals)
        self._open = list(range(len(self._names)))
        self._largest = Resources(max(r.cpus for r in self._totals.values()),
                                  max(r.memory_mb for r in self._totals.values()),
                                  max(r.disk_gb for r in self._totals.values()))
        self._vms: dict[str, _VM] = {}
        self._conns: list[SimDriver] = []
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._start_failures = 0
        self.connect_attempts = 0  #: how many times a driver tried to connect (tests read it)
        self.latency = latency
        self.faults = SimFaults.coerce(faults)

    # --- process-wide endpoints -----------------------------------------------

    @classmethod
    def named(cls, name: str, **config: Any) -> SimHypervisor:
        """The process-wide hypervisor called ``name``, created with ``config`` on first use."""
        with cls._registry_lock:
            hv = cls._registry.get(name)
            if hv is None:
                hv = cls._registry[name] = cls(name, **config)
            return hv

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop a process-wide hypervisor (tests use it to start fresh)."""
        with cls._registry_lock:
            cls._registry.pop(name, None)

    # --- fault control (tests and the fault-injection API call these) ---------

    def inject(self, **changes: Any) -> SimFaults:
        """Change some fault settings; returns the new :class:`SimFaults`."""
        with self._lock:
            self.faults = self.faults.replace(**changes)
            self._start_failures = 0
            return self.faults

    def heal(self) -> None:
        """Turn every fault off and release hung calls."""
        with self._lock:
            self.faults = SimFaults()
            self._start_failures = 0
        self.release_hangs()

    def release_hangs(self) -> None:
        """Let every call blocked by ``hang_ops`` proceed."""
        self._release.set()

    def drop_connections(self) -> int:
        """Break every open connection, as a network cut would.

        Each connected driver is marked disconnected (its calls raise
        ConnectionLost until it reconnects) and its ``watch_connection``
        callbacks run on this thread.

        Returns:
            How many connections were dropped.
        """
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn._lost(ConnectionLost(f"connection to simulated hypervisor {self.name!r} was dropped",
                                      driver=conn.name))
        return len(conns)

    def crash(self, name: str, detail: str = "injected crash") -> None:
        """Crash a running VM now (state CRASHED, event ``crashed``)."""
        with self._lock:
            vm = self._vm(name, None)
            self._transition(vm, "crash", None)
        self._emit(EventKind.CRASHED, name, detail, vm.host)

    @property
    def connections(self) -> int:
        """How many drivers are connected."""
        with self._lock:
            return len(self._conns)

    # --- used by SimDriver ------------------------------------------------------

    def attach(self, conn: SimDriver) -> None:
        self.before("connect", conn, None)
        with self._lock:
            if conn not in self._conns:
                self._conns.append(conn)

    def detach(self, conn: SimDriver) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)

    def before(self, op: str, conn: SimDriver, vm: str | None) -> None:
        """Apply connection faults, hangs and latency before an operation runs."""
        faults = self.faults
        if op == "connect":
            self.connect_attempts += 1
        if faults.auth_failure and op == "connect":
            raise AuthenticationFailed(f"simulated hypervisor {self.name!r} refused the credentials",
                                       driver=conn.name)
        if faults.unreachable:
            raise ConnectionLost(f"simulated hypervisor {self.name!r} is unreachable", driver=conn.name, vm=vm)
        if op in faults.hang_ops:
            if not self._release.wait(faults.hang_seconds):
                raise OperationTimeout(f"{op} hung for {faults.hang_seconds}s on simulated hypervisor "
                                       f"{self.name!r}", driver=conn.name, vm=vm, op=op)
        delay = self.latency.get(op, 0.0) if isinstance(self.latency, Mapping) else self.latency
        if delay:
            threading.Event().wait(delay)  # the op's own latency, not a synchronisation wait

    def _vm(self, name: str, driver: str | None) -> _VM:
        vm = self._vms.get(name)
        if vm is None:
            raise VMNotFound(f"no VM named {name!r} on simulated hypervisor {self.name!r}", driver=driver, vm=name)
        return vm

    def _transition(self, vm: _VM, op: str, driver: str | None) -> VMState:
        new = _model.next_state(vm.state, op)
        if new is None:
            allowed = sorted(s.value for s in _model.TRANSITIONS[op][0])
            raise InvalidState(f"cannot {op} VM {vm.spec.name!r} while it is {vm.state.value}; "
                               f"allowed from {allowed}", driver=driver, vm=vm.spec.name, state=vm.state.value, op=op)
        was_active, vm.state = vm.state.is_active, new
        if was_active and not new.is_active and vm.host is not None:
            self._charge(vm.host, _model.needs(vm.spec.vcpus, vm.spec.memory_mb, vm.spec.disk_gb), -1)
        return new

    def _charge(self, host: str, want: Resources, sign: int) -> None:
        """Add (``sign`` 1) or give back (-1) ``want`` on ``host``, keeping the open hosts."""
        used = self._used[host] = self._used[host] + want if sign > 0 else self._used[host] - want
        total, at = self._totals[host], self._position[host]
        full = used.cpus >= total.cpus or used.memory_mb >= total.memory_mb
        i = bisect.bisect_left(self._open, at)
        listed = i < len(self._open) and self._open[i] == at
        if full and listed:
            del self._open[i]
        elif not full and not listed:
            self._open.insert(i, at)

    def _first_fit_order(self, vm: _VM) -> Any:
        pinned = vm.spec.metadata.get("host")
        if pinned:
            return [pinned]
        rest = (self._names[i] for i in self._open)
        return itertools.chain([vm.host], rest) if vm.host else rest

    def _emit(self, kind: EventKind, vm: str, detail: str = "", host: str | None = None) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.emit(kind, vm, detail, host)

    def define(self, spec: VMSpec, driver: str) -> VMInfo:
        want = _model.needs(spec.vcpus, spec.memory_mb, spec.disk_gb)
        with self._lock:
            if spec.name in self._vms:
                raise VMExists(f"VM {spec.name!r} is already defined on {self.name!r}; undefine it first",
                               driver=driver, vm=spec.name)
            if not want.fits_in(self._largest):
                raise CapacityExceeded(f"VM {spec.name!r} needs {want.as_dict()} but the largest host of "
                                       f"{self.name!r} has {self._largest.as_dict()}", driver=driver, vm=spec.name)
            hint = spec.metadata.get("host")
            if hint is not None and hint not in self._totals:
                raise InvalidSpec(f"metadata host {hint!r} is not a host of {self.name!r}", driver=driver, vm=spec.name)
            nics = tuple(n if n.mac else replace(n, mac=_new_mac()) for n in spec.nics)
            vm = self._vms[spec.name] = _VM(spec, str(uuid.uuid4()), nics=nics)
            info = vm.info(driver)
        self._emit(EventKind.DEFINED, spec.name)
        return info

    def start(self, name: str, driver: str) -> None:
        with self._lock:
            vm = self._vm(name, driver)
            if _model.next_state(vm.state, "start") is None:
                self._transition(vm, "start", driver)  # raises InvalidState
            self._maybe_fail_start(name, driver)
            want = _model.needs(vm.spec.vcpus, vm.spec.memory_mb, vm.spec.disk_gb)
            host = _model.place(want, self._totals, self._used, order=self._first_fit_order(vm))
            if host is None:
                raise CapacityExceeded(f"no host of {self.name!r} has {want.as_dict()} free for VM {name!r}",
                                       driver=driver, vm=name, recoverable=True)
            self._charge(host, want, 1)
            vm.host = host
            self._transition(vm, "start", driver)
            vm.generation += 1
            gen, faults = vm.generation, self.faults
        self._write_console(vm.spec, f"[sim] {name} booted on {host}\n")
        self._emit(EventKind.STARTED, name, "", host)
        if faults.crash_after is not None and faults.applies_to(name):
            schedule(faults.crash_after, lambda: self._scheduled_crash(name, gen))

    def _maybe_fail_start(self, name: str, driver: str) -> None:
        f = self.faults
        if f.start_error is None or not f.applies_to(name):
            return
        if f.start_error_times is not None and self._start_failures >= f.start_error_times:
            return
        self._start_failures += 1
        raise BackendError(f.start_error, driver=driver, vm=name, recoverable=f.start_error_recoverable,
                           op="start", injected=True)

    def _scheduled_crash(self, name: str, generation: int) -> None:
        with self._lock:
            vm = self._vms.get(name)
            if vm is None or vm.generation != generation or not vm.state.is_active:
                return  # stopped, restarted or removed since: this crash is stale
            self._transition(vm, "crash", None)
        self._emit(EventKind.CRASHED, name, f"crash_after={self.faults.crash_after}s", vm.host)

    @staticmethod
    def _write_console(spec: VMSpec, line: str) -> None:
        if spec.console_log:
            with open(spec.console_log, "a", encoding="utf-8") as fh:
                fh.write(line)

    def simple(self, op: str, name: str, driver: str) -> None:
        """shutdown, destroy, suspend, resume, reboot, undefine."""
        with self._lock:
            vm = self._vm(name, driver)
            self._transition(vm, op, driver)
            if op == "undefine":
                del self._vms[name]
            host = vm.host
        kind = _model.event_for(op)
        if kind is not None:
            self._emit(kind, name, op, host)

    def list(self, driver: str) -> list[VMInfo]:
        with self._lock:
            return [vm.info(driver) for vm in self._vms.values()]

    def info(self, name: str, driver: str) -> VMInfo:
        with self._lock:
            return self._vm(name, driver).info(driver)

    def capacity(self) -> Capacity:
        with self._lock:
            return Capacity.from_hosts(HostCapacity(h, t, self._used[h]) for h, t in self._totals.items())

    def migrate(self, name: str, dest: str, driver: str) -> VMInfo:
        with self._lock:
            vm = self._vm(name, driver)
            if dest not in self._totals:
                raise InvalidSpec(f"cannot migrate {name!r}: {dest!r} is not a host of {self.name!r}; "
                                  f"hosts: {len(self._totals)}", driver=driver, vm=name)
            if _model.next_state(vm.state, "migrate") is None:
                self._transition(vm, "migrate", driver)  # raises InvalidState
            if dest == vm.host:
                raise InvalidState(f"VM {name!r} is already on host {dest!r}", driver=driver, vm=name)
            want = _model.needs(vm.spec.vcpus, vm.spec.memory_mb, vm.spec.disk_gb)
            if _model.place(want, self._totals, self._used, order=[dest]) is None:
                raise CapacityExceeded(f"host {dest!r} has no room for VM {name!r} ({want.as_dict()})",
                                       driver=driver, vm=name, host=dest, recoverable=True)
            assert vm.host is not None
            self._charge(vm.host, want, -1)
            self._charge(dest, want, 1)
            source, vm.host = vm.host, dest
            info = vm.info(driver)
        self._emit(EventKind.MIGRATED, name, f"{source}->{dest}", dest)
        return info

    def snapshot(self, name: str, tag: str, driver: str) -> None:
        with self._lock:
            vm = self._vm(name, driver)
            self._transition(vm, "snapshot", driver)
            if tag in vm.snapshots:
                raise VMExists(f"VM {name!r} already has a snapshot {tag!r}", driver=driver, vm=name)
            vm.snapshots.append(tag)

    def snapshots(self, name: str) -> list[str]:
        """The snapshot tags of a VM (for tests)."""
        with self._lock:
            return list(self._vm(name, None).snapshots)

    def console_log(self, name: str, driver: str) -> str:
        with self._lock:
            vm = self._vm(name, driver)
            if not vm.spec.console_log:
                raise InvalidState(f"VM {name!r} was defined without console_log", driver=driver, vm=name)
            return vm.spec.console_log

    def attach_nic(self, name: str, nic: NicSpec, driver: str) -> VMInfo:
        with self._lock:
            vm = self._vm(name, driver)
            self._transition(vm, "attach_nic", driver)
            if nic.mac and any(n.mac == nic.mac for n in vm.nics):
                raise InvalidSpec(f"VM {name!r} already has a NIC with MAC {nic.mac}", driver=driver, vm=name)
            vm.nics = (*vm.nics, nic if nic.mac else replace(nic, mac=_new_mac()))
            return vm.info(driver)
