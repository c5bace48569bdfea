"""The pure parts of the overlay's wiring: the wire codec, the planner's input from the desired
state (MACs stable and unique), NICs attached to VM specs, and the agent config's fields."""

from __future__ import annotations

import pytest

from overlay import Allocations, Nic, Site, SiteState, TenantNetwork, apply, diff, plan
from wind_actors.agent._overlay import OverlayPush, decode_diff, decode_state, encode_diff, encode_state
from wind_actors.config import parse_config
from wind_actors.controller._overlay import attach_nics, nic_mac, nic_tables, plan_inputs
from wind_actors.errors import ConfigError
from wind_actors.runtime import Codec
from wind_actors.services import Store, VMRecord, parse_descriptor

SITES = [Site("a", "172.31.0.1"), Site("b", "172.31.0.2"), Site("c", "172.31.0.3")]
NETS = [TenantNetwork("acme", "web", "10.1.0.0/24"), TenantNetwork("globex", "web", "10.1.0.0/24")]


def three_site_plan(extra: list[Nic] = ()):
    nics = [Nic("a1", "a", "acme", "web", "02:00:00:00:00:01"), Nic("b1", "b", "acme", "web", "02:00:00:00:00:02"),
            Nic("g1", "a", "globex", "web", "02:00:00:00:00:03"), *extra]
    return plan(SITES, NETS, nics)


def test_a_site_state_survives_the_wire_codec_unchanged():
    state = three_site_plan().sites["a"]
    codec = Codec()
    push = codec.decode(codec.encode(OverlayPush("a", "e1", 3, None, encode_state(state))))
    assert decode_state(push.change) == state


def test_a_diff_survives_the_wire_and_applies_to_the_same_new_state():
    old = three_site_plan()
    new = plan(SITES, NETS, [*[Nic(n.vm, s, n2.tenant, n2.network, n.mac) for s, st in old.sites.items()
                               for n2 in st.segments.values() for n in n2.nics],
                             Nic("c1", "c", "acme", "web", "02:00:00:00:00:04")], previous=old.allocations)
    for site in "abc":
        before = old.sites[site]
        change = diff(before, new.sites[site])
        codec = Codec()
        wired = decode_diff(codec.decode(codec.encode(encode_diff(change))))
        assert apply(before, wired) == new.sites[site]
        assert {u.new.vni: u.fdb_add for u in wired.update} == {u.new.vni: u.fdb_add for u in change.update}


def test_an_empty_site_state_round_trips():
    assert decode_state(encode_state(SiteState.empty("x", "1.2.3.4"))) == SiteState.empty("x", "1.2.3.4")


APP = parse_descriptor("""
tenant: acme
application: web
networks:
  web: {cidr: 10.1.0.0/24}
components:
  front: {image: x, count: 3, networks: [web]}
  batch: {image: x, count: 1}
""")


def records(sites: dict[str, str | None]) -> list[VMRecord]:
    return [VMRecord(f"acme.web.{iid}", "acme", "web", iid, iid.split("-")[0], site) for iid, site in sites.items()]


def test_placed_vms_on_overlay_sites_get_one_nic_per_network_and_others_none():
    macs: dict = {}
    inputs = plan_inputs([APP], records({"front-0": "a", "front-1": "b", "front-2": None, "batch-0": "a"}),
                         {"a": "172.31.0.1", "b": "172.31.0.2"}, macs)
    assert [(n.vm, n.site, n.network) for n in inputs.nics] == [("acme.web.front-0", "a", "web"),
                                                               ("acme.web.front-1", "b", "web")]
    assert inputs.networks == (TenantNetwork("acme", "web", "10.1.0.0/24"),)
    assert len({n.mac for n in inputs.nics}) == 2 and set(macs.values()) == {n.mac for n in inputs.nics}


def test_a_vms_mac_stays_when_others_come_and_go_and_a_collision_is_drawn_again():
    sites = {"a": "172.31.0.1", "b": "172.31.0.2"}
    macs: dict = {}
    first = plan_inputs([APP], records({"front-1": "b"}), sites, macs)
    # Someone already holds the MAC front-0 would hash to: it must draw another.
    macs[("acme", "web", "acme.web.zz")] = nic_mac("acme", "web", "acme.web.front-0")
    recs = records({"front-0": "a", "front-1": "b"}) + [VMRecord("acme.web.zz", "acme", "web", "zz", "front", "a")]
    second = plan_inputs([APP], recs, sites, macs)
    by_vm = {n.vm: n.mac for n in second.nics}
    assert by_vm["acme.web.front-1"] == first.nics[0].mac
    assert by_vm["acme.web.front-0"] == nic_mac("acme", "web", "acme.web.front-0", salt=1)
    assert len(set(by_vm.values())) == 3
    third = plan_inputs([APP], records({"front-1": "b"}), sites, macs)
    assert third.nics == first.nics and set(macs) == {("acme", "web", "acme.web.front-1")}


def test_nic_macs_are_locally_administered_unicast():
    for i in range(50):
        first = int(nic_mac("t", "n", f"vm{i}").split(":")[0], 16)
        assert first & 0x02 and not first & 0x01


def test_vm_specs_get_the_planned_mac_and_attach_point_bridge(tmp_path):
    sites = {"a": "172.31.0.1", "b": "172.31.0.2"}
    inputs = plan_inputs([APP], records({"front-0": "a", "front-1": "b"}), sites, {})
    the_plan = plan(inputs.sites, inputs.networks, inputs.nics, previous=Allocations())
    tables = nic_tables(the_plan, inputs)
    store = Store(tmp_path / "wind.db")
    store.put_overlay("overlay/nics/acme/web", tables[("acme", "web")])
    spec = {"name": "acme.web.front-0", "nics": [{"network": "acme.web", "mac": None, "bridge": None, "tap": None}]}
    batch = {"name": "acme.web.batch-0", "nics": []}
    attach_nics({"a": [{"spec": spec}, {"spec": batch}]}, store, "acme", "web")
    (entry,) = tables[("acme", "web")]["acme.web.front-0"]
    assert spec["nics"][0]["mac"] == entry["mac"]
    assert spec["nics"][0]["bridge"] == the_plan.attach_point("a", "acme", "web") == entry["bridge"]
    assert entry["ip"] == the_plan.address_of("acme", "web", entry["mac"]).ip and entry["prefixlen"] == 24
    store.close()


def test_the_agent_config_takes_an_underlay_ip_and_a_namespace():
    text = '[agent]\nsite = "a"\ncontroller = "c@hq"\nunderlay_ip = "172.31.0.1"\noverlay_netns = "site-a"\n'
    agent = parse_config(text).agent
    assert (agent.underlay_ip, agent.overlay_netns) == ("172.31.0.1", "site-a")
    assert parse_config('[agent]\nsite = "a"\ncontroller = "c@hq"\n').agent.underlay_ip is None


@pytest.mark.parametrize("field, value", [("underlay_ip", "not-an-ip"), ("overlay_netns", "bad/name")])
def test_a_bad_overlay_setting_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        parse_config(f'[agent]\nsite = "a"\ncontroller = "c@hq"\n{field} = "{value}"\n')
