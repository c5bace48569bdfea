"""The driver contract: one small ABC every hypervisor or cloud-OS plug-in implements."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import structlog

from ._capabilities import OPERATION_CAPABILITY, Capabilities
from ._capacity import Capacity
from ._events import EventKind, VMEvent
from ._info import VMInfo
from ._spec import NicSpec, VMSpec
from .errors import ConnectionLost, NotSupported

__all__ = ["Driver", "EventCallback"]

EventCallback = Callable[[VMEvent], None]

_log = structlog.get_logger("wind.drivers")


class Driver(abc.ABC):
    """A connection to one hypervisor or cloud endpoint.

    A driver is plain blocking code with no actor of its own; a
    :class:`drivers.DriverActor` owns one instance and calls it from its own
    thread, so one slow endpoint never stalls anything else. Drivers are
    constructed with keyword configuration only (``cls(**config)``), so the
    registry can build any of them from a config file.

    Every method raises only :mod:`drivers.errors` exceptions: backend
    exceptions are translated here, at the boundary. Optional operations
    whose capability flag is False raise :class:`~drivers.errors.NotSupported`;
    check ``driver.capabilities`` first to avoid that.

    Class attributes:
        kind: the registry name (``"sim"``, ``"libvirt"`` ...).
        capabilities: what this driver can do (an instance may narrow it in
            ``__init__``, e.g. libvirt's test driver cannot migrate).

    Args:
        name: the endpoint's name as it appears in events, errors and logs
            (default: ``kind``).
    """

    kind: ClassVar[str] = "driver"
    capabilities: Capabilities = Capabilities()

    def __init__(self, *, name: str | None = None) -> None:
        self.name: str = name or self.kind
        self._subscribers: dict[int, EventCallback] = {}
        self._sub_lock = threading.Lock()
        self._next_sub = 0
        self._conn_watchers: list[Callable[[ConnectionLost], None]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    def __enter__(self) -> Driver:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- connection -------------------------------------------------------

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection to the endpoint (idempotent).

        Raises:
            ConnectionLost: the endpoint cannot be reached (recoverable).
            AuthenticationFailed: the endpoint refused the credentials.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent; never raises)."""

    # --- mandatory operations ---------------------------------------------

    @abc.abstractmethod
    def define(self, spec: VMSpec) -> VMInfo:
        """Make a VM known to the endpoint without starting it.

        Args:
            spec: what the VM should be.

        Returns:
            The VM as defined (state ``DEFINED``).

        Raises:
            VMExists: the name is taken.
            InvalidSpec: the backend cannot express the spec.
            CapacityExceeded: the endpoint can never hold it.
        """

    @abc.abstractmethod
    def start(self, name: str) -> None:
        """Boot a defined VM.

        Raises:
            VMNotFound, InvalidState (already running), CapacityExceeded.
        """

    @abc.abstractmethod
    def shutdown(self, name: str) -> None:
        """Ask the guest to power off (returns before it has, on real guests).

        Raises:
            VMNotFound, InvalidState (not running).
        """

    @abc.abstractmethod
    def destroy(self, name: str) -> None:
        """Power the VM off at once (it stays defined).

        Raises:
            VMNotFound, InvalidState (not active).
        """

    @abc.abstractmethod
    def undefine(self, name: str) -> None:
        """Forget a stopped VM.

        Raises:
            VMNotFound, InvalidState (still active: destroy it first).
        """

    @abc.abstractmethod
    def list(self) -> list[VMInfo]:
        """Every VM this endpoint knows, active or not."""

    @abc.abstractmethod
    def info(self, name: str) -> VMInfo:
        """One VM.

        Raises:
            VMNotFound: no VM of that name.
        """

    @abc.abstractmethod
    def capacity(self) -> Capacity:
        """The endpoint's capacity, with a per-host breakdown where known."""

    # --- optional operations (capability-gated) ------------------------------

    def suspend(self, name: str) -> None:
        """Pause a running VM in memory (capability ``suspend``)."""
        raise self.not_supported("suspend", name)

    def resume(self, name: str) -> None:
        """Resume a paused VM (capability ``suspend``)."""
        raise self.not_supported("resume", name)

    def reboot(self, name: str) -> None:
        """Reboot a running VM (capability ``reboot``)."""
        raise self.not_supported("reboot", name)

    def migrate(self, name: str, dest_host: str) -> VMInfo:
        """Live-migrate a VM to another host of this endpoint (capability ``live_migration``).

        Returns:
            The VM on its new host.
        """
        raise self.not_supported("migrate", name)

    def snapshot(self, name: str, tag: str) -> None:
        """Take a named snapshot of a VM (capability ``snapshots``)."""
        raise self.not_supported("snapshot", name)

    def console_log(self, name: str) -> str:
        """Path of the file the VM's serial console is written to (capability ``console``)."""
        raise self.not_supported("console_log", name)

    def attach_nic(self, name: str, nic: NicSpec) -> VMInfo:
        """Add a NIC to a VM (capability ``nic_attach``).

        Returns:
            The VM with its new NIC.
        """
        raise self.not_supported("attach_nic", name)

    def not_supported(self, op: str, vm: str | None = None) -> NotSupported:
        """The error for an operation this driver lacks (for ``raise``)."""
        return NotSupported(
            f"{op} is not supported by the {self.kind} driver: its capabilities have "
            f"{OPERATION_CAPABILITY.get(op, op)}=False; check driver.capabilities.allows({op!r}) first",
            driver=self.name, vm=vm, op=op,
        )

    # --- events -------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Receive every lifecycle event this driver sees.

        ``callback(event)`` runs on the driver's event thread (libvirt's
        event loop, the simulator's timer, a poller) or, for events a call
        causes synchronously, on the caller's thread. It must not block; an
        exception it raises is logged and dropped.

        Args:
            callback: called with each :class:`VMEvent`.

        Returns:
            A function that unsubscribes (idempotent).
        """
        with self._sub_lock:
            key = self._next_sub
            self._next_sub += 1
            self._subscribers[key] = callback
            first = len(self._subscribers) == 1
        if first:
            self._demand(True)

        def unsubscribe() -> None:
            with self._sub_lock:
                last = self._subscribers.pop(key, None) is not None and not self._subscribers
            if last:
                self._demand(False)

        return unsubscribe

    @property
    def has_subscribers(self) -> bool:
        """Whether any event callback is subscribed."""
        return bool(self._subscribers)

    def _demand(self, wanted: bool) -> None:
        try:
            self.on_event_demand(wanted)
        except Exception:  # a subscription must not fail because the backend hiccupped
            _log.exception("driver.event_demand_failed", driver=self.name, wanted=wanted)

    def on_event_demand(self, wanted: bool) -> None:
        """Hook: the first subscriber arrived (``True``) or the last one left (``False``).

        Runs on the thread that called :meth:`subscribe` or the unsubscribe
        function, after the subscription changed. A driver whose backend
        charges for watching events (libvirt delivers each one into Python
        on its event thread, taking the GIL) can start and stop watching
        here; it must then not rely on events it no longer receives. The
        default does nothing. Exceptions are logged and dropped.
        """

    def emit(self, kind: EventKind | str, vm: str, detail: str = "", host: str | None = None) -> VMEvent:
        """Deliver an event to every subscriber (for driver implementations).

        Returns:
            The event delivered.
        """
        event = VMEvent(kind if type(kind) is EventKind else EventKind(kind), vm, self.name, detail, host=host)
        # Copy without the lock: dict.values() snapshot via tuple() is atomic
        # under the GIL, and this runs once per event on the backend's thread.
        callbacks = tuple(self._subscribers.values())
        for cb in callbacks:
            try:
                cb(event)
            except Exception:  # a broken subscriber must not break the driver
                _log.exception("driver.subscriber_failed", driver=self.name, vm=vm, kind=event.kind.value)
        return event

    def watch_connection(self, callback: Callable[[ConnectionLost], None]) -> None:
        """Be told when the connection drops while no call is running.

        A call on a dropped connection raises :class:`ConnectionLost` anyway;
        this is for backends that notice on their own (libvirt's close
        callback, the simulator's ``drop_connections``). ``callback(error)``
        runs on the backend's thread and must not block.
        """
        with self._sub_lock:
            self._conn_watchers.append(callback)

    def notify_connection_lost(self, error: ConnectionLost) -> None:
        """Tell every :meth:`watch_connection` callback (for driver implementations)."""
        with self._sub_lock:
            watchers = list(self._conn_watchers)
        for cb in watchers:
            try:
                cb(error)
            except Exception:
                _log.exception("driver.connection_watcher_failed", driver=self.name)

    def describe(self) -> dict[str, Any]:
        """Plain data about this driver (kind, name, capabilities) for logs and the wire."""
        return {"kind": self.kind, "name": self.name, "capabilities": self.capabilities.as_dict()}
