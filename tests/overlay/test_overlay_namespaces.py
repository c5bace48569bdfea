"""The realizer against the real kernel: three sites as network namespaces on an underlay bridge.

Each site's Realizer works in its own namespace exactly as an agent would;
"VMs" are veth endpoints in namespaces of their own, plugged into the site's
tenant bridge with the address IPAM gave them. Traffic is real ICMP over
real VXLAN.
"""

from __future__ import annotations

import re

import pytest

from overlay import FLOOD_MAC, FdbEntry, NamespaceNotFound, Realizer, SiteState

pytestmark = pytest.mark.root

WIND_DEVICE = re.compile(r"^w[bx]-[0-9a-f]{6}$")


def wind_devices(lab, site: str) -> set[str]:
    return {name for name in lab.links(lab.site_netns(site)) if WIND_DEVICE.match(name)}


def neighbour_mac(lab, vm: str, ip: str) -> str:
    out = lab.run(lab.vm_netns(vm), ["ip", "neigh", "show", ip]).stdout
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    assert match, out
    return match.group(1)


def test_vms_at_three_sites_ping_each_other_over_a_tenant_network(three_sites):
    ov = three_sites
    ov.web_vms("a", "b", "c")

    assert ov.lab.ping("a1", ov.ip_of("b1"), count=2)
    assert ov.lab.ping("a1", ov.ip_of("c1"), count=2)
    assert ov.lab.ping("c1", ov.ip_of("b1"), count=2)


def test_segment_devices_have_the_mtu_of_the_underlay_minus_vxlan_overhead(three_sites):
    ov = three_sites
    ov.add_network("acme", "web", "10.1.0.0/24")
    ov.add_vm("a1", "a", "acme", "web", "52:54:00:00:01:01")
    seg = ov.plan.sites["a"].segment_for("acme", "web")
    out = ov.lab.run(ov.lab.site_netns("a"), ["ip", "-d", "link", "show", seg.vxlan]).stdout
    assert f"mtu {ov.lab.underlay_mtu - 50} " in out
    assert f"vxlan id {seg.vni} " in out
    assert "nolearning" in out
    assert f"master {seg.bridge}" in out


def test_a_second_tenant_on_an_overlapping_cidr_cannot_reach_the_first(three_sites):
    ov = three_sites
    ov.add_network("acme", "web", "10.1.0.0/24")
    ov.add_network("globex", "web", "10.1.0.0/24")
    ov.add_vm("a1", "a", "acme", "web", "52:54:00:00:01:01")
    ov.add_vm("a2", "b", "acme", "web", "52:54:00:00:01:02")
    ov.add_vm("a3", "c", "acme", "web", "52:54:00:00:01:03")
    ov.add_vm("g1", "a", "globex", "web", "52:54:00:00:02:01")
    ov.add_vm("g2", "c", "globex", "web", "52:54:00:00:02:02")
    assert ov.ip_of("g1") == ov.ip_of("a1") and ov.ip_of("g2") == ov.ip_of("a2")

    # Each tenant reaches its own VM behind the same address, never the other's.
    assert ov.lab.ping("g1", ov.ip_of("g2"))
    assert neighbour_mac(ov.lab, "g1", ov.ip_of("g2")) == "52:54:00:00:02:02"
    assert ov.lab.ping("a1", ov.ip_of("a2"))
    assert neighbour_mac(ov.lab, "a1", ov.ip_of("a2")) == "52:54:00:00:01:02"
    # 10.1.0.3 exists only in acme (at site c, where globex also has a VM).
    assert not ov.lab.ping("g1", ov.ip_of("a3"), count=2, wait=0.5)
    assert not ov.lab.ping("g2", ov.ip_of("a3"), count=2, wait=0.5)


def test_undeploying_a_sites_last_vm_removes_its_devices_and_the_others_forget_it(three_sites):
    ov = three_sites
    ov.web_vms("a", "b", "c")
    c_ns = ov.lab.site_netns("c")
    ov.lab.run(c_ns, ["ip", "link", "add", "wb-user", "type", "bridge"])  # not Wind's: must survive
    vni = ov.plan.networks[("acme", "web")].vni
    c_ip = ov.sites["c"].underlay_ip

    ov.lab.remove_vm("c1")
    del ov.nics["c1"]
    ov.converge()

    assert wind_devices(ov.lab, "c") == set()
    assert "wb-user" in ov.lab.links(c_ns)
    for site in ("a", "b"):
        assert not {e for e in ov.realizers[site].fdb(vni) if e.dst == c_ip}
    assert ov.lab.ping("a1", ov.ip_of("b1"))


def test_removing_a_site_tears_down_its_devices_and_stops_flooding_to_it(three_sites):
    ov = three_sites
    ov.add_network("acme", "db", "10.2.0.0/24")
    ov.web_vms("a", "b", "c")
    ov.add_vm("c2", "c", "acme", "db", "52:54:00:00:01:04")
    assert len(wind_devices(ov.lab, "c")) == 4
    c_ip = ov.sites["c"].underlay_ip
    vni = ov.plan.networks[("acme", "web")].vni

    del ov.sites["c"], ov.nics["c1"], ov.nics["c2"]
    ov.converge()

    assert wind_devices(ov.lab, "c") == set()
    assert ov.realizers["a"].fdb(vni) == {FdbEntry(FLOOD_MAC, ov.sites["b"].underlay_ip),
                                          FdbEntry("52:54:00:00:01:02", ov.sites["b"].underlay_ip)}
    assert FdbEntry(FLOOD_MAC, c_ip) not in ov.realizers["b"].fdb(vni)


def test_restarting_an_agent_re_realizes_nothing_and_loses_no_packets(three_sites):
    ov = three_sites
    ov.web_vms("a", "b", "c")
    before = {site: r.owned_devices() for site, r in ov.realizers.items()}
    assert ov.lab.ping("a1", ov.ip_of("b1"))  # ARP settled before we count losses
    pinger = ov.lab.spawn_ping("a1", ov.ip_of("b1"), count=30, interval=0.05)

    for site in ("a", "b", "c"):
        ov.realizers[site].close()
        ov.realizers[site] = Realizer(ov.lab.site_netns(site))  # a fresh agent process's realizer
        report = ov.realizers[site].realize(ov.plan.sites[site])
        assert report.noop, report

    out, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in out, out
    assert {site: r.owned_devices() for site, r in ov.realizers.items()} == before  # same ifindexes


def test_realize_repairs_drift_and_removes_stray_wind_devices(three_sites):
    ov = three_sites
    ov.web_vms("a", "b")
    ns = ov.lab.site_netns("a")
    seg = ov.plan.sites["a"].segment_for("acme", "web")
    b_ip = ov.sites["b"].underlay_ip
    ov.lab.run(ns, ["bridge", "fdb", "del", "52:54:00:00:01:02", "dev", seg.vxlan, "dst", b_ip])
    ov.lab.run(ns, ["ip", "link", "set", seg.vxlan, "mtu", "1300"])
    ov.lab.run(ns, ["ip", "link", "add", "wb-00beef", "type", "bridge"])

    report = ov.realizers["a"].realize(ov.plan.sites["a"])

    assert report.fdb_added == 1 and report.changed == [seg.vxlan] and report.removed == ["wb-00beef"]
    assert ov.realizers["a"].fdb(seg.vni) == seg.fdb
    assert ov.lab.ping("a1", ov.ip_of("b1"))


def test_teardown_removes_every_wind_device_and_nothing_else(three_sites):
    ov = three_sites
    ov.add_network("acme", "web", "10.1.0.0/24")
    ov.add_network("acme", "db", "10.2.0.0/24")
    ov.add_vm("a1", "a", "acme", "web", "52:54:00:00:01:01")
    ov.add_vm("a2", "a", "acme", "db", "52:54:00:00:01:02")
    others = {n for n in ov.lab.links(ov.lab.site_netns("a")) if not WIND_DEVICE.match(n)}
    ours = wind_devices(ov.lab, "a")
    assert len(ours) == 4

    report = ov.realizers["a"].teardown()

    assert set(report.removed) == ours
    assert wind_devices(ov.lab, "a") == set()
    assert set(ov.lab.links(ov.lab.site_netns("a"))) == others
    assert ov.realizers["a"].realize(SiteState.empty("a")).noop


def test_a_realizer_for_a_missing_namespace_says_so():
    with pytest.raises(NamespaceNotFound, match="does not exist") as info:
        Realizer("wind-no-such-namespace")
    assert info.value.recoverable is True
    assert info.value.context == {"netns": "wind-no-such-namespace"}


def test_a_pushed_diff_rebuilds_a_segment_whose_devices_were_deleted_behind_its_back(three_sites):
    ov = three_sites
    ov.web_vms("a", "b")
    seg = ov.plan.sites["b"].segment_for("acme", "web")
    ov.lab.run(ov.lab.site_netns("b"), ["ip", "link", "del", seg.vxlan])

    ov.add_vm("c1", "c", "acme", "web", "52:54:00:00:01:03")  # pushes an FDB-only update to b

    assert ov.realizers["b"].fdb(seg.vni) == ov.plan.sites["b"].segment_for("acme", "web").fdb
    assert ov.lab.ping("c1", ov.ip_of("b1"))


def test_a_vni_handed_to_another_tenant_gets_fresh_devices_not_the_old_ones(three_sites):
    from overlay import Nic, TenantNetwork, diff, plan

    ov = three_sites
    sites = list(ov.sites.values())
    old = plan(sites, [TenantNetwork("acme", "web", "10.1.0.0/24")],
               [Nic("a1", "a", "acme", "web", "52:54:00:00:01:01"), Nic("b1", "b", "acme", "web", "52:54:00:00:01:02")])
    # Planned without acme's allocations, globex's network lands on the same VNI.
    new = plan(sites, [TenantNetwork("globex", "web", "10.1.0.0/24")],
               [Nic("g1", "a", "globex", "web", "52:54:00:00:02:01"), Nic("g2", "c", "globex", "web", "52:54:00:00:02:02")])
    assert old.sites["a"].segments.keys() == new.sites["a"].segments.keys()
    realizer = ov.realizers["a"]
    realizer.realize(old.sites["a"])
    before = realizer.owned_devices()

    change = diff(old.sites["a"], new.sites["a"])
    report = realizer.apply(change)

    assert len(change.remove) == len(change.add) == 1 and not change.update
    assert sorted(report.removed) == sorted(report.created) == sorted(before)
    assert set(realizer.owned_devices().values()).isdisjoint(before.values())
    seg = new.sites["a"].segment_for("globex", "web")
    assert realizer.fdb(seg.vni) == seg.fdb
