"""Wind's WAN overlay: a pure planner for tenant networks across sites and a netlink realizer.

The controller calls :func:`plan` with every site, tenant network and VM NIC
(plus the previous plan's :class:`Allocations`, which it persists) when it
starts, and :func:`replan` with just the networks that changed after that, then
:func:`diff_plans` to get what changed per site, and pushes each
:class:`SiteDiff` to that site's agent. The agent holds a :class:`Realizer`
for its namespace: :meth:`Realizer.realize` with the full :class:`SiteState`
when it starts, :meth:`Realizer.apply` for each pushed diff, and
:meth:`Realizer.teardown` when the site leaves. VM NICs join a network at a
site through :meth:`Plan.attach_point` (the bridge) with the address from
:meth:`Plan.address_of`.

This package imports nothing else of Wind's. :mod:`overlay.testing` has a
namespace lab (sites and VMs as network namespaces) for tests and benchmarks.
"""

from ._diff import SegmentUpdate, SiteDiff, apply, diff, diff_plans
from ._model import (
    FLOOD_MAC,
    Allocations,
    FdbEntry,
    Member,
    NetworkKey,
    NetworkPlan,
    Nic,
    NicAddress,
    Plan,
    Segment,
    Site,
    SiteState,
    TenantNetwork,
)
from ._names import VNI_MAX, VNI_MIN, bridge_name, vxlan_name
from ._planner import plan
from ._realizer import VXLAN_OVERHEAD, RealizeReport, Realizer
from ._replan import replan
from .errors import AddressPoolExhausted, NamespaceNotFound, OverlayError, PlanError, RealizeError

__all__ = [
    "FLOOD_MAC",
    "VNI_MAX",
    "VNI_MIN",
    "VXLAN_OVERHEAD",
    "AddressPoolExhausted",
    "Allocations",
    "FdbEntry",
    "Member",
    "NamespaceNotFound",
    "NetworkKey",
    "NetworkPlan",
    "Nic",
    "NicAddress",
    "OverlayError",
    "Plan",
    "PlanError",
    "RealizeError",
    "RealizeReport",
    "Realizer",
    "Segment",
    "SegmentUpdate",
    "Site",
    "SiteDiff",
    "SiteState",
    "TenantNetwork",
    "apply",
    "bridge_name",
    "diff",
    "diff_plans",
    "plan",
    "replan",
    "vxlan_name",
]
