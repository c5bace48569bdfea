"""The controller's core services: descriptors, the pool, the scheduler, the store, reconciliation.

Everything here is pure (no threads, no sockets) except ``Store``, which owns one SQLite file.
The controller actors call these; tests and Hypothesis drive them directly.

* ``parse_descriptor`` / ``load_descriptor`` turn YAML into a validated ``AppDescriptor``
  (or ``DescriptorInvalid`` listing every problem).
* ``Pool`` is built from ``SiteReport``s; ``Scheduler`` / ``schedule`` place an application whole
  (``Placement``) or raise ``PlacementFailed`` with a Nomad-style ``Explanation``.
* ``Store`` persists tenants, applications, VM records, operations and overlay allocations.
* ``reconcile`` maps (desired, observed) VMs to place/start/stop/ignore/lost/adopt actions.
* ``replan_lost`` moves the VMs of lost sites elsewhere, a whole component or none of it.
* ``Tenants`` authenticates tokens; ``TenantView`` scopes every lookup to one tenant.
"""

from ..errors import (
    DescriptorInvalid, NotFound, NotSupportedYet, PlacementFailed, StoreError, Unauthenticated,
)
from ._descriptor import (
    POLICIES, RESTART_POLICIES, SCOPES, SITE_KINDS, SPREAD_OVER, AppDescriptor, Component,
    ComponentPlacement, LatencyBound, Network, Problem, Relation, Spread, Where, instance_id, vm_name,
)
from ._explain import Explanation
from ._parse import load_descriptor, parse_descriptor
from ._pool import DRIVER_KINDS, HEALTHY, Host, Pool, Resources, Site, SiteReport
from ._reconcile import ALIVE_STATES, Action, DesiredVM, ObservedVM, Reconciliation, reconcile
from ._replan import LostApp, LostReplan, Move, Stuck, replan_lost
from ._scheduler import Placement, Scheduler, Slot, schedule
from ._store import AppRecord, Operation, Store, VMRecord
from ._tenancy import Tenants, TenantView

__all__ = [
    # descriptors
    "parse_descriptor", "load_descriptor", "AppDescriptor", "Component", "ComponentPlacement",
    "Network", "Where", "Relation", "LatencyBound", "Spread", "Problem", "instance_id", "vm_name",
    "POLICIES", "RESTART_POLICIES", "SCOPES", "SITE_KINDS", "SPREAD_OVER",
    # pool and scheduler
    "Pool", "SiteReport", "Site", "Host", "Resources", "HEALTHY", "DRIVER_KINDS",
    "Scheduler", "schedule", "Placement", "Slot", "Explanation",
    # store and tenancy
    "Store", "AppRecord", "VMRecord", "Operation", "Tenants", "TenantView",
    # reconciliation
    "reconcile", "Reconciliation", "Action", "DesiredVM", "ObservedVM", "ALIVE_STATES",
    # lost sites
    "replan_lost", "LostApp", "LostReplan", "Move", "Stuck",
    # errors
    "DescriptorInvalid", "NotSupportedYet", "PlacementFailed", "NotFound", "Unauthenticated",
    "StoreError",
]
