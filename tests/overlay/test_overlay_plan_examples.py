"""The planner, IPAM, VNI allocation and diffs, by example (pure: no kernel)."""

from __future__ import annotations

import pickle

import pytest

import overlay
from overlay import (
    FLOOD_MAC,
    AddressPoolExhausted,
    Allocations,
    FdbEntry,
    Nic,
    PlanError,
    Site,
    SiteState,
    TenantNetwork,
    apply,
    bridge_name,
    diff,
    diff_plans,
    plan,
    vxlan_name,
)

SITES = [Site("a", "192.0.2.1"), Site("b", "192.0.2.2"), Site("c", "192.0.2.3")]
WEB = TenantNetwork("acme", "web", "10.0.0.0/24")
DB = TenantNetwork("acme", "db", "10.0.1.0/24")
OTHER = TenantNetwork("globex", "web", "10.0.0.0/24")  # overlaps acme/web on purpose


def nic(vm: str, site: str, network: TenantNetwork = WEB, mac: str | None = None) -> Nic:
    return Nic(vm, site, network.tenant, network.name, mac or f"52:54:00:00:00:{int(vm[2:]):02x}")


def test_all_lists_every_public_name_and_each_resolves():
    public = {name for name in dir(overlay) if not name.startswith("_")} - {
        "errors", "testing"}
    public = {n for n in public if not isinstance(getattr(overlay, n), type(overlay))}
    assert set(overlay.__all__) == public
    for name in overlay.__all__:
        assert getattr(overlay, name) is not None


def test_each_site_gets_one_segment_per_network_with_a_member_there():
    p = plan(SITES, [WEB, DB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "a", DB)])
    assert sorted(s.network for s in p.sites["a"].segments.values()) == ["db", "web"]
    assert [s.network for s in p.sites["b"].segments.values()] == ["web"]
    assert p.sites["c"].segments == {}


def test_flood_entries_go_to_exactly_the_other_member_sites():
    p = plan(SITES, [WEB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "b")])
    seg_a = p.sites["a"].segment_for("acme", "web")
    assert seg_a is not None
    assert seg_a.flood == {"192.0.2.2"}
    assert seg_a.fdb == {FdbEntry(FLOOD_MAC, "192.0.2.2"), FdbEntry("52:54:00:00:00:02", "192.0.2.2"),
                         FdbEntry("52:54:00:00:00:03", "192.0.2.2")}


def test_devices_are_named_by_vni_and_fit_linux_ifname_limit():
    p = plan(SITES, [WEB], [nic("vm1", "a")])
    seg = p.sites["a"].segment_for("acme", "web")
    assert seg is not None
    assert seg.bridge == bridge_name(seg.vni) == p.attach_point("a", "acme", "web")
    assert seg.vxlan == vxlan_name(seg.vni)
    assert len(bridge_name(overlay.VNI_MAX)) <= 15


def test_overlapping_cidrs_of_two_tenants_get_distinct_vnis_and_bridges():
    p = plan(SITES, [WEB, OTHER], [nic("vm1", "a"), nic("vm2", "a", OTHER)])
    web, other = p.networks[WEB.key], p.networks[OTHER.key]
    assert web.vni != other.vni
    assert web.bridge != other.bridge
    # Same CIDR, same first address: isolation comes from the VNI, not from addressing.
    assert p.address_of("acme", "web", "52:54:00:00:00:01").ip == "10.0.0.1"
    assert p.address_of("globex", "web", "52:54:00:00:00:02").ip == "10.0.0.1"


def test_replanning_with_previous_allocations_keeps_vnis_and_addresses():
    first = plan(SITES, [WEB, DB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "c")])
    # A new network sorting first and a NIC sorting first must not shift anything.
    early = TenantNetwork("aaa", "first", "10.9.0.0/24")
    second = plan(SITES, [early, WEB, DB],
                  [nic("vm0", "a", mac="00:00:00:00:00:01"), nic("vm2", "b"), nic("vm3", "c")],
                  previous=first.allocations)
    assert second.networks[WEB.key].vni == first.networks[WEB.key].vni
    assert second.networks[DB.key].vni == first.networks[DB.key].vni
    for vm in ("vm2", "vm3"):
        mac = f"52:54:00:00:00:0{vm[-1]}"
        assert second.address_of("acme", "web", mac) == first.address_of("acme", "web", mac)


def test_an_undeployed_nics_address_is_released_for_reuse():
    tiny = TenantNetwork("acme", "tiny", "10.0.0.0/30")  # two host addresses
    first = plan(SITES, [tiny], [nic("vm1", "a", tiny), nic("vm2", "b", tiny)])
    with pytest.raises(AddressPoolExhausted) as info:
        plan(SITES, [tiny], [nic("vm1", "a", tiny), nic("vm2", "b", tiny), nic("vm3", "c", tiny)],
             previous=first.allocations)
    assert info.value.context == {"tenant": "acme", "network": "tiny"}
    freed = first.address_of("acme", "tiny", "52:54:00:00:00:01").ip
    later = plan(SITES, [tiny], [nic("vm2", "b", tiny), nic("vm3", "c", tiny)], previous=first.allocations)
    assert later.address_of("acme", "tiny", "52:54:00:00:00:03").ip == freed


def test_a_deleted_networks_vni_is_not_reused_by_the_next_new_network():
    first = plan(SITES, [WEB, DB], [])
    second = plan(SITES, [WEB, OTHER], [], previous=first.allocations)
    assert second.networks[OTHER.key].vni not in {first.networks[k].vni for k in first.networks}


def test_allocations_survive_a_round_trip_through_plain_data():
    p = plan(SITES, [WEB, OTHER], [nic("vm1", "a"), nic("vm2", "b", OTHER)])
    data = p.allocations.to_dict()
    assert pickle.loads(pickle.dumps(data)) == data
    assert Allocations.from_dict(data) == p.allocations


@pytest.mark.parametrize(
    ("sites", "networks", "nics", "fragment"),
    [
        ([SITES[0], SITES[0]], [WEB], [], "duplicate site name"),
        ([SITES[0], Site("z", SITES[0].underlay_ip)], [WEB], [], "already used by site a"),
        (SITES, [WEB, WEB], [], "duplicate tenant network"),
        (SITES, [TenantNetwork("t", "n", "10.0.0.1/24")], [], "invalid CIDR"),
        (SITES, [WEB], [Nic("vm1", "nowhere", "acme", "web", "52:54:00:00:00:01")], "unknown site"),
        (SITES, [WEB], [Nic("vm1", "a", "acme", "nope", "52:54:00:00:00:01")], "unknown tenant network"),
        (SITES, [WEB], [Nic("vm1", "a", "acme", "web", "52:54:00:00:01")], "invalid MAC"),
        (SITES, [WEB], [nic("vm1", "a", mac="52:54:00:00:00:01"), nic("vm2", "b", mac="52:54:00:00:00:01")],
         "used twice on one network"),
    ],
    ids=["dup-site", "dup-underlay", "dup-network", "host-bits-cidr", "unknown-site", "unknown-network",
         "bad-mac", "dup-mac"],
)
def test_inconsistent_input_is_rejected_with_a_precise_error(sites, networks, nics, fragment):
    with pytest.raises(PlanError, match=fragment) as info:
        plan(sites, networks, nics)
    assert info.value.recoverable is False


def test_adding_a_vm_changes_only_the_other_member_sites_by_one_fdb_entry():
    sites = [*SITES, Site("d", "192.0.2.4")]
    before = plan(sites, [WEB, DB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "d", DB)])
    after = plan(sites, [WEB, DB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "d", DB), nic("vm4", "b")],
                 previous=before.allocations)
    changes = diff_plans(before, after)
    assert set(changes) == {"a", "b"}  # b gains a NIC (no kernel FDB change), a learns its MAC
    (update,) = changes["a"].update
    assert update.fdb_add == {FdbEntry("52:54:00:00:00:04", "192.0.2.2")}
    assert update.fdb_remove == frozenset()
    assert changes["b"].update[0].fdb_add == frozenset()


def test_a_removed_site_is_diffed_to_empty_and_others_stop_flooding_to_it():
    before = plan(SITES, [WEB], [nic("vm1", "a"), nic("vm2", "b"), nic("vm3", "c")])
    after = plan(SITES[:2], [WEB], [nic("vm1", "a"), nic("vm2", "b")], previous=before.allocations)
    changes = diff_plans(before, after)
    assert apply(before.sites["c"], changes["c"]) == SiteState.empty("c", "192.0.2.3")
    assert FdbEntry(FLOOD_MAC, "192.0.2.3") in changes["a"].update[0].fdb_remove


def test_applying_a_diff_to_the_old_state_gives_the_new_state():
    before = plan(SITES, [WEB, DB], [nic("vm1", "a"), nic("vm2", "b", DB)])
    after = plan(SITES, [WEB, OTHER], [nic("vm1", "a"), nic("vm3", "a", OTHER), nic("vm4", "c")],
                 previous=before.allocations)
    for name in ("a", "b", "c"):
        assert apply(before.sites[name], diff(before.sites[name], after.sites[name])) == after.sites[name]


def test_diffing_states_of_different_sites_is_refused():
    p = plan(SITES, [WEB], [])
    with pytest.raises(PlanError, match="one site at a time"):
        diff(p.sites["a"], p.sites["b"])


def test_errors_keep_their_context_through_pickling():
    err = AddressPoolExhausted("full", tenant="acme", network="web")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is AddressPoolExhausted
    assert copy.context == err.context
    assert str(copy) == "full [tenant=acme network=web]"
