"""Planner invariants under Hypothesis: random inputs, and a controller's life of random changes.

Invariants after every plan: VNIs unique; addresses unique within a network
and inside its CIDR; each site has a segment for exactly the networks it has
NICs on; flood lists are exactly the other member sites; the FDB covers every
remote MAC and nothing else. Across re-plans: every surviving network keeps
its VNI and every surviving NIC its address, diffs applied to the old state
give the new state, and sites left out of the diff did not change.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from overlay import (
    FLOOD_MAC,
    VNI_MAX,
    VNI_MIN,
    FdbEntry,
    Nic,
    Plan,
    Site,
    SiteState,
    TenantNetwork,
    apply,
    diff,
    diff_plans,
    plan,
)

CIDRS = ["10.0.0.0/28", "10.0.0.0/29", "10.0.1.0/28", "fd00::/124"]  # overlapping on purpose
MAX_NICS_PER_NETWORK = 6  # a /29 has six hosts


def check_invariants(p: Plan, sites: list[Site], networks: list[TenantNetwork], nics: list[Nic]) -> None:
    vnis = [n.vni for n in p.networks.values()]
    assert len(set(vnis)) == len(vnis) == len(networks)
    assert all(VNI_MIN <= v <= VNI_MAX for v in vnis)
    site_ip = {s.name: s.underlay_ip for s in sites}
    for tnet in networks:
        members = [n for n in nics if (n.tenant, n.network) == tnet.key]
        ips = [p.address_of(n.tenant, n.network, n.mac).ip for n in members]
        assert len(set(ips)) == len(ips)
        cidr = ipaddress.ip_network(tnet.cidr)
        assert all(ipaddress.ip_address(ip) in cidr for ip in ips)
        member_sites = {n.site for n in members}
        for site in sites:
            seg = p.sites[site.name].segment_for(tnet.tenant, tnet.name)
            if site.name not in member_sites:
                assert seg is None
                continue
            assert seg is not None and seg.vni == p.networks[tnet.key].vni
            assert seg.flood == {site_ip[s] for s in member_sites if s != site.name}
            remote = {FdbEntry(n.mac.lower(), site_ip[n.site]) for n in members if n.site != site.name}
            assert seg.fdb == remote | {FdbEntry(FLOOD_MAC, ip) for ip in seg.flood}
            assert {a.mac for a in seg.nics} == {n.mac.lower() for n in members if n.site == site.name}


@st.composite
def overlays(draw):
    n_sites = draw(st.integers(1, 5))
    sites = [Site(f"s{i}", f"192.0.2.{i + 1}") for i in range(n_sites)]
    networks = [TenantNetwork(f"t{draw(st.integers(0, 1))}", f"n{j}", draw(st.sampled_from(CIDRS)))
                for j in range(draw(st.integers(1, 4)))]
    networks = list({n.key: n for n in networks}.values())
    nics = []
    for tnet in networks:
        macs = draw(st.sets(st.integers(0, 255), max_size=MAX_NICS_PER_NETWORK))
        for m in sorted(macs):
            site = draw(st.sampled_from(sites)).name
            nics.append(Nic(f"vm-{tnet.name}-{m}", site, tnet.tenant, tnet.name, f"52:54:00:00:00:{m:02X}"))
    return sites, networks, nics


@given(overlays())
def test_every_plan_satisfies_the_invariants(case):
    sites, networks, nics = case
    check_invariants(plan(sites, networks, nics), sites, networks, nics)


@given(overlays(), overlays())
def test_a_diff_applied_to_the_old_state_gives_the_new_state(old_case, new_case):
    old, new = plan(*old_case), plan(*new_case)
    for name in set(old.sites) & set(new.sites):
        assert apply(old.sites[name], diff(old.sites[name], new.sites[name])) == new.sites[name]


class OverlayLife(RuleBasedStateMachine):
    """A controller's view over time: sites, networks and NICs come and go; every change re-plans."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[str, Site] = {}
        self.networks: dict[tuple[str, str], TenantNetwork] = {}
        self.nics: dict[tuple[str, str, str], Nic] = {}  # (tenant, network, mac)
        self.plan: Plan | None = None
        self.counter = 0

    def _replan(self) -> None:
        old = self.plan
        new = plan(self.sites.values(), self.networks.values(), self.nics.values(),
                   previous=old.allocations if old else None)
        if old is not None:
            for key, net in new.networks.items():
                if key in old.networks:
                    assert net.vni == old.networks[key].vni
                    for mac, addr in net.nics.items():
                        if mac in old.networks[key].nics:
                            assert addr.ip == old.networks[key].nics[mac].ip
            changes = diff_plans(old, new)
            for name in set(old.sites) | set(new.sites):
                before = old.sites.get(name) or SiteState.empty(name, new.sites[name].underlay_ip)
                after = new.sites.get(name) or SiteState.empty(name, before.underlay_ip)
                if name in changes:
                    assert apply(before, changes[name]) == after
                else:
                    assert before.segments == after.segments
        self.plan = new

    @rule(data=st.data())
    def add_site(self, data):
        self.counter += 1
        name = f"s{self.counter}"
        self.sites[name] = Site(name, f"198.51.{self.counter // 250}.{self.counter % 250 + 1}")
        self._replan()

    @precondition(lambda self: self.sites)
    @rule(data=st.data())
    def remove_site(self, data):
        name = data.draw(st.sampled_from(sorted(self.sites)))
        del self.sites[name]
        self.nics = {k: n for k, n in self.nics.items() if n.site != name}
        self._replan()

    @rule(tenant=st.sampled_from(["t0", "t1"]), cidr=st.sampled_from(CIDRS))
    def add_network(self, tenant, cidr):
        self.counter += 1
        self.networks[(tenant, f"n{self.counter}")] = TenantNetwork(tenant, f"n{self.counter}", cidr)
        self._replan()

    @precondition(lambda self: self.networks)
    @rule(data=st.data())
    def remove_network(self, data):
        key = data.draw(st.sampled_from(sorted(self.networks)))
        del self.networks[key]
        self.nics = {k: n for k, n in self.nics.items() if (n.tenant, n.network) != key}
        self._replan()

    @precondition(lambda self: self.sites and self.networks)
    @rule(data=st.data(), mac=st.integers(0, 255))
    def add_nic(self, data, mac):
        key = data.draw(st.sampled_from(sorted(self.networks)))
        if sum(1 for k in self.nics if k[:2] == key) >= MAX_NICS_PER_NETWORK:
            return
        site = data.draw(st.sampled_from(sorted(self.sites)))
        self.counter += 1
        mac_s = f"52:54:00:00:00:{mac:02x}"
        self.nics[(*key, mac_s)] = Nic(f"vm{self.counter}", site, key[0], key[1], mac_s)
        self._replan()

    @precondition(lambda self: self.nics)
    @rule(data=st.data())
    def remove_nic(self, data):
        del self.nics[data.draw(st.sampled_from(sorted(self.nics)))]
        self._replan()

    @invariant()
    def plan_is_consistent(self):
        if self.plan is not None:
            check_invariants(self.plan, list(self.sites.values()), list(self.networks.values()),
                             list(self.nics.values()))


OverlayLife.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_overlay_life = OverlayLife.TestCase
