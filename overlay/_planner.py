"""The overlay planner: a pure function from sites, networks and NICs to every site's desired state.

For each tenant network the planner allocates a VNI (:mod:`._vni`) and an
address per NIC (:mod:`._ipam`), builds the network's member table (which
sites have NICs, with which MACs) once, and gives every member site a
:class:`Segment` that shares that table. Its cost is linear in the input:
one pass over the NICs, one sort per network, one segment per (site, network)
pair with members.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Mapping

from ._ipam import Network, allocate_addresses, parse_cidr
from ._model import (
    Allocations,
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
from ._vni import allocate_vnis
from .errors import PlanError

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def plan(
    sites: Iterable[Site],
    networks: Iterable[TenantNetwork],
    nics: Iterable[Nic],
    previous: Allocations | None = None,
) -> Plan:
    """Compute every site's desired overlay state.

    Args:
        sites: every site in the overlay (names and underlay addresses unique).
        networks: every tenant network (``(tenant, name)`` unique; CIDRs may
            overlap between networks, they are isolated by VNI).
        nics: every VM NIC; each names a known site and network, and its MAC is
            unique within its network.
        previous: the last plan's :attr:`Plan.allocations`; networks and NICs
            in it keep their VNI and address. ``None`` plans from scratch.

    Returns:
        A :class:`Plan`: a :class:`SiteState` for every site (one segment per
        network with a NIC at that site), a :class:`NetworkPlan` per network,
        and the allocations to persist.

    Raises:
        PlanError: the input is inconsistent (the message names the item).
        AddressPoolExhausted: a network has more NICs than its CIDR has hosts.
    """
    # The plan is ~300,000 acyclic objects at 100,000 NICs. Left on, the
    # cyclic GC rescans the whole heap (previous plans included) several
    # times while they are built, which was a third of plan_ms and the main
    # source of its variance. Nothing here creates cycles, so pause it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan(sites, networks, nics, previous)
    finally:
        if was_enabled:
            gc.enable()


def _plan(sites: Iterable[Site], networks: Iterable[TenantNetwork], nics: Iterable[Nic],
          previous: Allocations | None) -> Plan:
    prev = previous if previous is not None else Allocations()
    site_ip = _index_sites(sites)
    nets = _index_networks(networks)
    by_net = _group_nics(nics, site_ip, nets)
    vnis, next_vni = allocate_vnis(nets.keys(), prev.vnis, prev.next_vni)

    addresses: dict[NetworkKey, dict[str, str]] = {}
    network_plans: dict[NetworkKey, NetworkPlan] = {}
    per_site: dict[str, dict[int, Segment]] = {name: {} for name in site_ip}
    for key, (tnet, parsed) in nets.items():
        addresses[key], network_plans[key] = plan_network(key, tnet, parsed, by_net.get(key, {}), vnis[key],
                                                          prev.addresses.get(key, {}), site_ip, per_site)

    states = {name: SiteState(name, ip, per_site[name]) for name, ip in site_ip.items()}
    return Plan(states, network_plans, Allocations(vnis, addresses, next_vni))


def plan_network(key: NetworkKey, tnet: TenantNetwork, parsed: Network, group: dict[str, Nic], vni: int,
                 previous: Mapping[str, str], site_ip: Mapping[str, str],
                 per_site: dict[str, dict[int, Segment]]) -> tuple[dict[str, str], NetworkPlan]:
    """Plan one network: its addresses, its :class:`NetworkPlan`, and a segment at each member
    site, added to ``per_site[site]`` (shared by :func:`plan` and :func:`overlay.replan`, so a
    network re-planned alone comes out exactly as in a whole plan).

    Returns:
        ``({mac: ip}, NetworkPlan)``.
    """
    macs = sorted(group)
    addrs = allocate_addresses(parsed, macs, previous, tenant=key.tenant, network=key.name)
    site_nics = _nics_by_site(group, macs, addrs, parsed.prefixlen)
    members = {s: Member(site_ip[s], frozenset(n.mac for n in lst)) for s, lst in site_nics.items()}
    net_plan = NetworkPlan(key, tnet.cidr, vni, members, {n.mac: n for lst in site_nics.values() for n in lst})
    for s, lst in site_nics.items():
        per_site[s][vni] = Segment(s, site_ip[s], key.tenant, key.name, tnet.cidr, vni, tuple(lst), members)
    return addrs, net_plan


def _index_sites(sites: Iterable[Site]) -> dict[str, str]:
    site_ip: dict[str, str] = {}
    seen_ips: dict[str, str] = {}
    for site in sites:
        if site.name in site_ip:
            raise PlanError("duplicate site name; site names must be unique", site=site.name)
        other = seen_ips.get(site.underlay_ip)
        if other is not None:
            raise PlanError(f"underlay address {site.underlay_ip} is already used by site {other}; "
                            "every site needs its own VTEP address", site=site.name)
        site_ip[site.name] = site.underlay_ip
        seen_ips[site.underlay_ip] = site.name
    return site_ip


def _index_networks(networks: Iterable[TenantNetwork]) -> dict[NetworkKey, tuple[TenantNetwork, Network]]:
    nets: dict[NetworkKey, tuple[TenantNetwork, Network]] = {}
    for tnet in networks:
        key = NetworkKey(tnet.tenant, tnet.name)
        if key in nets:
            raise PlanError("duplicate tenant network; (tenant, name) must be unique", tenant=tnet.tenant,
                            network=tnet.name)
        nets[key] = (tnet, parse_cidr(tnet.cidr, tenant=tnet.tenant, network=tnet.name))
    return nets


def _group_nics(nics: Iterable[Nic], site_ip: dict[str, str], nets: dict) -> dict[tuple, dict[str, Nic]]:
    # Plain (tenant, network) tuples hash and compare equal to NetworkKey, and
    # skipping 100,000 NamedTuple constructions is a measurable share of plan_ms.
    by_net: dict[tuple, dict[str, Nic]] = {}
    valid_mac = _MAC.fullmatch
    for nic in nics:
        key = (nic.tenant, nic.network)
        group = by_net.get(key)
        if group is None:
            if key not in nets:
                raise PlanError("NIC on an unknown tenant network; declare the network first",
                                vm=nic.vm, tenant=nic.tenant, network=nic.network)
            group = by_net[key] = {}
        if nic.site not in site_ip:
            raise PlanError("NIC at an unknown site; add the site first", vm=nic.vm, site=nic.site)
        mac = nic.mac.lower()
        if valid_mac(mac) is None:
            raise PlanError(f"invalid MAC {nic.mac!r}; expected six colon-separated hex octets",
                            vm=nic.vm, tenant=nic.tenant, network=nic.network)
        other = group.get(mac)
        if other is not None:
            raise PlanError(f"MAC {mac} is used twice on one network (VMs {other.vm} and {nic.vm}); "
                            "MACs must be unique within a network", tenant=nic.tenant, network=nic.network)
        group[mac] = nic
    return by_net


def _nics_by_site(group: dict[str, Nic], macs: list[str], addrs: dict[str, str],
                  prefixlen: int) -> dict[str, list[NicAddress]]:
    site_nics: dict[str, list[NicAddress]] = {}
    for mac in macs:  # sorted, so each site's list is sorted by MAC
        nic = group[mac]
        lst = site_nics.get(nic.site)
        if lst is None:
            lst = site_nics[nic.site] = []
        lst.append(NicAddress(nic.vm, mac, addrs[mac], prefixlen))
    return site_nics
