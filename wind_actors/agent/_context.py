"""SiteContext: what every actor of one agent shares, and outlives their restarts.

The driver actor and the VM supervisors are restarted by the agent's supervisor and come back
with new refs; the context is where the others find the current ones. It also routes driver
events to the VM actor owning each VM.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from drivers import EventKind, Inventory, VMEvent

__all__ = ["SiteContext", "VMChanged"]

_log = structlog.get_logger("wind.agent")


#: Seconds a crashed VM actor counts as being restarted (VM restart backoff is at most ~6 s).
RESTART_HORIZON = 15.0


@dataclass(frozen=True)
class VMChanged:
    """A VM actor's news for its site actor: one VM's new state (batched to the controller).
    Posted with :meth:`SiteContext.vm_changed`; a site actor also accepts it as a message."""

    name: str
    state: str
    host: str | None = None
    detail: str = ""
    restarts: int = 0


class SiteContext:
    """Shared, thread-safe state of one agent.

    Args:
        node: the agent's :class:`~wind_actors.runtime.Node`.
        site: the site name.
        driver_kind: the driver's registry name (``sim``, ``libvirt`` ...).
        driver_options: the driver's keyword configuration.
    """

    def __init__(self, node: Any, site: str, driver_kind: str, driver_options: dict[str, Any]) -> None:
        self.node = node
        self.site = site
        self.driver_kind = driver_kind
        self.driver_options = driver_options
        self._lock = threading.Lock()
        self._driver: pykka.ActorRef[Any] | None = None
        self._driver_proxy: tuple[pykka.ActorRef[Any], Any] | None = None  # (ref, its proxy)
        self._site: pykka.ActorRef[Any] | None = None
        self.sups: dict[str, pykka.ActorRef[Any]] = {}
        self._vms: dict[str, pykka.ActorRef[Any]] = {}
        self._restarts: dict[str, int] = {}
        self._restarting: dict[str, float] = {}  # VM -> when its crashed actor left
        self._changes: dict[str, VMChanged] = {}  # VM -> its latest news, not yet taken

    # -- current refs ---------------------------------------------------------------------------

    def set_driver(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        """Record the driver actor's current ref (called by its child spec's start)."""
        self._driver = ref
        return ref

    def driver(self) -> Any:
        """Returns: a proxy of the current driver actor (calls raise ActorDeadError while it
        restarts)."""
        ref = self._driver
        if ref is None:
            raise pykka.ActorDeadError(f"the driver actor of site {self.site} is not running")
        # One proxy per incarnation: building a Pykka proxy walks the actor's attributes
        # (about 0.3 ms), more than a driver call on a simulated site.
        cached = self._driver_proxy
        if cached is None or cached[0] is not ref:
            cached = self._driver_proxy = (ref, ref.proxy())
        return cached[1]

    def set_site(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        """Record the site actor's current ref."""
        self._site = ref
        return ref

    def tell_site(self, message: Any) -> None:
        """Tell the site actor (dropped while it restarts: its next report covers it)."""
        ref = self._site
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def vm_changed(self, change: VMChanged) -> None:
        """Post a VM's new state for the site actor, which takes the latest news of every VM on
        its next tick (:meth:`take_changes`). Not a message per change: a deploy of thousands of
        VMs would queue them behind the very request that starts those VMs."""
        with self._lock:
            self._changes[change.name] = change

    def take_changes(self) -> list[VMChanged]:
        """The VMs' news posted since the last call, oldest first (one per VM: its latest)."""
        with self._lock:
            changes, self._changes = self._changes, {}
        return list(changes.values())

    # -- VM actors --------------------------------------------------------------------------------

    def add_vm(self, name: str, ref: pykka.ActorRef[Any]) -> int:
        """Route ``name``'s events to ``ref``. Returns: how many times it was restarted before."""
        with self._lock:
            first = name not in self._vms and name not in self._restarts
            self._vms[name] = ref
            self._restarting.pop(name, None)
            if first:
                self._restarts[name] = 0
                return 0
            self._restarts[name] = self._restarts.get(name, -1) + 1
            return self._restarts[name]

    def drop_vm(self, name: str, ref: pykka.ActorRef[Any], *, forget: bool = False,
                restarting: bool = False) -> None:
        """Stop routing to ``ref`` (if it is still the route); ``forget`` the restart count;
        ``restarting``: it crashed and its supervisor will start a successor (see :meth:`has_vm`)."""
        with self._lock:
            if self._vms.get(name) is ref:
                del self._vms[name]
                if restarting:
                    self._restarting[name] = time.monotonic()
            if forget:
                self._restarts.pop(name, None)

    def vm_ref(self, name: str) -> pykka.ActorRef[Any] | None:
        """Returns: the live VM actor of ``name``, or None."""
        ref = self._vms.get(name)
        return ref if ref is not None and ref.is_alive() else None

    def has_vm(self, name: str) -> bool:
        """Whether ``name`` has a live VM actor, or one whose supervisor is restarting it (within
        :data:`RESTART_HORIZON` seconds of its crash, which covers the longest restart backoff).
        Starting another actor then would give the VM two owners."""
        if self.vm_ref(name) is not None:
            return True
        left = self._restarting.get(name)
        return left is not None and time.monotonic() - left < RESTART_HORIZON

    def vm_names(self) -> list[str]:
        """Returns: the VMs that have a live VM actor."""
        with self._lock:
            return [n for n, r in self._vms.items() if r.is_alive()]

    def restarts(self, name: str) -> int:
        """Returns: how many times the VM actor of ``name`` was restarted."""
        return self._restarts.get(name, 0)

    # -- driver events (driver event thread: never blocks) -------------------------------------

    def route(self, event: VMEvent | Inventory) -> None:
        """Driver hub subscriber: a VM's event to its VM actor, an inventory to the site actor."""
        if isinstance(event, Inventory):
            self.tell_site(event)
            return
        if event.kind is EventKind.DEFINED:
            return  # a VM actor acts on state changes only; a deploy defines every VM it starts
        ref = self._vms.get(event.vm)
        if ref is not None:
            try:
                ref.tell(event)
            except pykka.ActorDeadError:
                pass  # restarting: the new incarnation reads the VM's state when it starts
