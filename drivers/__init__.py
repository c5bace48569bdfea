"""Wind's drivers: one contract for every hypervisor and cloud OS, plug-ins, and driver actors.

CONTRACT STATUS: final (v1). The names in ``__all__`` are what other packages
code against; additions are fine, renames are not.

- :class:`Driver` is the small ABC a plug-in implements (blocking calls, keyword
  config, backend errors translated to :mod:`drivers.errors`).
- :class:`Capabilities` declares optional features as data; an operation a
  driver lacks raises :class:`~drivers.errors.NotSupported`.
- :class:`VMState` is the one state enum (``UNKNOWN`` is the fallback);
  :class:`VMSpec`/:class:`NicSpec` say what a VM should be, :class:`VMInfo`
  what it is, :class:`Capacity`/:class:`HostCapacity` what an endpoint holds.
- :class:`VMEvent` (and :class:`Inventory` after each (re)connect) are pushed
  to subscribers as messages. A driver may watch its backend's events only
  while it has subscribers (:meth:`Driver.on_event_demand`); libvirt's does,
  because each event it watches costs a GIL hand-off on libvirt's thread.
- :func:`load_driver`/:func:`available_drivers`/:func:`create_driver` find
  plug-ins in entry-point group ``wind.drivers`` (built in: ``sim``,
  ``libvirt``, ``libcloud``).
- :class:`DriverActor` is the supervised actor owning one driver (one per endpoint);
  :func:`driver_actor_spec` makes its ChildSpec, :class:`Subscribers` keeps its
  subscriptions across restarts. (These are imported lazily: the pure contract
  needs neither pykka nor supervisors.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._capabilities import OPERATION_CAPABILITY, Capabilities
from ._capacity import Capacity, HostCapacity, Resources
from ._driver import Driver, EventCallback
from ._events import EVENT_VERSION, EventKind, Inventory, VMEvent
from ._info import VMInfo
from ._registry import ENTRY_POINT_GROUP, available_drivers, create_driver, load_driver
from ._spec import NicSpec, VMSpec, check_name
from ._state import VMState

if TYPE_CHECKING:
    from ._actor import DriverActor, driver_actor_spec, driver_factory, start_driver_actor
    from ._hub import Subscribers

__all__ = [
    "Capabilities",
    "Capacity",
    "Driver",
    "DriverActor",
    "ENTRY_POINT_GROUP",
    "EVENT_VERSION",
    "EventCallback",
    "EventKind",
    "HostCapacity",
    "Inventory",
    "NicSpec",
    "Subscribers",
    "OPERATION_CAPABILITY",
    "Resources",
    "VMEvent",
    "VMInfo",
    "VMSpec",
    "VMState",
    "available_drivers",
    "check_name",
    "create_driver",
    "driver_actor_spec",
    "driver_factory",
    "errors",
    "load_driver",
    "start_driver_actor",
]


_LAZY = {
    "DriverActor": "._actor", "start_driver_actor": "._actor", "driver_actor_spec": "._actor",
    "driver_factory": "._actor", "Subscribers": "._hub",
}


def __getattr__(name: str) -> Any:
    # The actor pulls in supervisors and pykka; importing it lazily keeps the
    # pure contract importable on its own (and by plug-ins at install time).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'drivers' has no attribute {name!r}")
