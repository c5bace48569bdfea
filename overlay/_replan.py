"""Re-planning some networks only: the planner's cost follows the change, not the overlay's size.

:func:`replan` takes the previous :class:`Plan` and the current input of just the networks that
changed (their definition and every NIC on them) and returns the plan :func:`plan` would return
for the whole, changed input with ``previous=old.allocations``: the property tests check exactly
that. Every other network keeps its :class:`NetworkPlan`, VNI and addresses as they are (the same
objects), and a site no changed network touches keeps its very :class:`SiteState`, so
:func:`diff_plans` skips it at the cost of an identity check.

Its cost: the dirty networks' NICs, the segments of the sites they touch, and a copy of the
per-network tables (one entry per network, never per NIC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ._model import Allocations, NetworkKey, Nic, Plan, Segment, Site, SiteState, TenantNetwork
from ._planner import _group_nics, _index_networks, _index_sites, plan_network
from ._vni import allocate_vnis
from .errors import PlanError

__all__ = ["replan"]


def replan(
    previous: Plan,
    sites: Iterable[Site],
    networks: Iterable[TenantNetwork],
    nics: Iterable[Nic],
    dirty: Iterable[tuple[str, str]],
) -> Plan:
    """Re-plan the ``dirty`` networks of ``previous``; keep every other network as it was.

    Args:
        previous: the last plan (from :func:`plan` or :func:`replan`).
        sites: every site in the overlay now (as for :func:`plan`).
        networks: the current definition of each dirty network that still exists; a dirty network
            left out is deleted (its VNI and addresses are released).
        nics: every NIC on those networks (and no other).
        dirty: ``(tenant, name)`` of every network whose definition or NICs changed, and of every
            network with NICs at a site that left the overlay or changed its underlay address.
            A network that is not dirty must be unchanged; listing more than changed is harmless.

    Returns:
        The :class:`Plan`, equal to ``plan(sites, all networks, all nics, previous.allocations)``.

    Raises:
        PlanError: the input is inconsistent: as for :func:`plan`, or a network or NIC given
            that is not dirty, or a network not dirty with NICs at a site that changed.
        AddressPoolExhausted: a dirty network has more NICs than its CIDR has hosts.
    """
    dirty_keys = {NetworkKey(*key) for key in dirty}
    site_ip = _index_sites(sites)
    nets = _index_networks(networks)
    for key in nets:
        if key not in dirty_keys:
            raise PlanError("network given to replan but not marked dirty; add it to dirty",
                            tenant=key.tenant, network=key.name)
    by_net = _group_nics(nics, site_ip, nets)
    _check_sites(previous, site_ip, dirty_keys)

    prev = previous.allocations
    kept_vnis = {k: v for k, v in prev.vnis.items() if k not in dirty_keys}
    new_vnis, next_vni = allocate_vnis(nets.keys(), prev.vnis, prev.next_vni, taken=set(kept_vnis.values()))
    addresses = {k: a for k, a in prev.addresses.items() if k not in dirty_keys}
    network_plans = {k: n for k, n in previous.networks.items() if k not in dirty_keys}
    added: defaultdict[str, dict[int, Segment]] = defaultdict(dict)  # only sites a dirty network reaches
    for key, (tnet, parsed) in nets.items():
        addresses[key], network_plans[key] = plan_network(
            key, tnet, parsed, by_net.get(key, {}), new_vnis[key], prev.addresses.get(key, {}), site_ip, added)

    # Sites whose segments change: members of a dirty network before or after, and new ones.
    gone: dict[str, list[int]] = {}
    for key in dirty_keys:
        old = previous.networks.get(key)
        if old is not None:
            for site in old.members:
                gone.setdefault(site, []).append(old.vni)
    states: dict[str, SiteState] = {}
    for name, ip in site_ip.items():
        before = previous.sites.get(name)
        if before is not None and before.underlay_ip == ip and name not in gone and name not in added:
            states[name] = before  # untouched: the very same object
            continue
        segments = dict(before.segments) if before is not None and before.underlay_ip == ip else {}
        for vni in gone.get(name, ()):
            segments.pop(vni, None)
        segments.update(added.get(name, {}))
        states[name] = SiteState(name, ip, segments)
    return Plan(states, network_plans, Allocations({**kept_vnis, **new_vnis}, addresses, next_vni))


def _check_sites(previous: Plan, site_ip: dict[str, str], dirty: set[NetworkKey]) -> None:
    """Refuse a site that left or changed its address while a network not dirty has NICs there."""
    for name, state in previous.sites.items():
        if site_ip.get(name) == state.underlay_ip:
            continue
        for segment in state.segments.values():
            if segment.key not in dirty:
                raise PlanError("site left the overlay or changed its underlay address, but a network "
                                "with NICs there is not marked dirty; re-plan it too", site=name,
                                tenant=segment.tenant, network=segment.network)
