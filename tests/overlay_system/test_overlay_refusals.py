"""Refusals that protect the overlay, in an in-process cluster (a real controller and three sim
agents on their own nodes, over ZeroMQ with CURVE): bad tenant networks are refused at deploy
before anything is placed or stored, and a site is removed only when nothing is placed there.

The sites here take no part in the overlay's kernel side (no ``underlay_ip``), so these tests
need no root; tests/overlay_system/test_site_removal.py removes a site whose agent realizes its
overlay in a network namespace.
"""

from __future__ import annotations


import pytest

from wind_actors.agent import Agent
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.controller._overlay import ALLOCATIONS_KEY, Replan
from system_harness import wait_for
from wind_actors.errors import DescriptorInvalid, NotFound, PlacementFailed, SiteInUse, Forbidden

TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}


@pytest.fixture
def cluster():
    sites = [SiteSpec(s, "sim", {"hosts": 4}, report_interval=0.2) for s in ("dc-1", "dc-2", "dc-3")]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1) as running:
        yield running


def app(name: str, cidr: str, count: int = 2, network: str = "net", tenant: str = "acme",
        where: str = "", spread: bool = False) -> dict:
    comp = {"image": "x", "vcpus": 1, "memory_mb": 64, "count": count, "networks": [network]}
    if where:
        comp["placement"] = {"where": {"sites": [where]}}
    if spread:
        comp["placement"] = {"anti_affinity": ["node"]}
    return {"tenant": tenant, "application": name, "networks": {network: {"cidr": cidr}},
            "components": {"node": comp}}


def nothing_of(cluster: Cluster, tenant: str, name: str) -> None:
    """Assert that no trace of application ``name`` exists: no application or VM record, no
    operation, no VM in any site's hypervisor."""
    store = cluster.controller.store
    assert all(r.name != name for r in store.list_applications(tenant))
    assert all(r.app != name for r in store.vms(tenant))
    assert all(o.app != name for o in store.operations(tenant))
    for agent in cluster.agents.values():
        inventory = agent.ctx.driver().inventory().get(timeout=10)
        assert not [vm.name for vm in inventory.vms if vm.name.startswith(f"{tenant}.{name}.")]


def allocated_networks(cluster: Cluster) -> set[tuple[str, str]]:
    data = cluster.controller.store.get_overlay(ALLOCATIONS_KEY, {}) or {}
    return {(n["tenant"], n["name"]) for n in data.get("networks", [])}


# -- bad networks --------------------------------------------------------------------------------


def test_a_second_app_declaring_the_tenants_network_with_another_cidr_is_refused_and_nothing_is_placed(cluster):
    wind = cluster.client("acme")
    assert wind.deploy(app("first", "10.70.0.0/24"))["operation"]["state"] == "done"
    before = wind.sites()

    with pytest.raises(DescriptorInvalid) as refused:
        wind.deploy(app("second", "10.71.0.0/24"))
    (problem,) = refused.value.problems
    assert problem.path == "networks.net.cidr" and problem.found == "10.71.0.0/24"
    assert "10.70.0.0/24" in problem.allowed and "'first'" in problem.allowed
    nothing_of(cluster, "acme", "second")
    assert [r["vms"] for r in wind.sites()] == [r["vms"] for r in before]

    # The same network with the same CIDR is the tenant's shared network: accepted.
    assert wind.deploy(app("third", "10.70.0.0/24"))["operation"]["state"] == "done"
    # Another tenant's network of the same name is another network.
    assert cluster.client("globex").deploy(app("first", "10.99.0.0/24", tenant="globex"))["state"] == "deploying"


def test_an_exhausted_cidr_is_refused_at_deploy_with_nothing_half_applied(cluster):
    wind = cluster.client("acme")
    with pytest.raises(DescriptorInvalid) as refused:
        wind.deploy(app("crowd", "10.72.0.0/30", count=3))  # a /30 has two host addresses
    (problem,) = refused.value.problems
    assert problem.path == "networks.net.cidr" and "3 NICs" in problem.allowed
    assert "do not fit" in problem.allowed  # the overlay planner's own words
    nothing_of(cluster, "acme", "crowd")
    cluster.controller.node.whereis("overlay").ask(Replan(), timeout=10)
    assert ("acme", "net") not in allocated_networks(cluster)


def test_nics_already_deployed_on_the_network_count_against_its_cidr(cluster):
    wind = cluster.client("acme")
    wind.deploy(app("four", "10.73.0.0/29", count=4))  # a /29 has six host addresses
    with pytest.raises(DescriptorInvalid) as refused:
        wind.deploy(app("three-more", "10.73.0.0/29", count=3))
    assert "3 from this application, 4 already deployed" in refused.value.problems[0].allowed
    nothing_of(cluster, "acme", "three-more")
    assert wind.deploy(app("two-more", "10.73.0.0/29", count=2))["operation"]["state"] == "done"


# -- removing a site -----------------------------------------------------------------------------


def test_removing_a_site_with_no_vms_drops_it_from_the_pool_for_good_and_is_idempotent(cluster):
    wind, ops = cluster.client("acme"), cluster.operator()
    result = ops.remove_site("dc-3")
    assert result["state"] == "removed" and result["op"].startswith("op-")
    assert ops.operation(result["op"])["state"] == "done"
    assert sorted(r["site"] for r in wind.sites()) == ["dc-1", "dc-2"]

    # Its agent is still running and reporting: it stays out.
    removed = cluster.controller.removed_sites
    wait_for(lambda: removed.ignored("dc-3") >= 3, 10, "three more reports from the removed agent")
    assert sorted(r["site"] for r in wind.sites()) == ["dc-1", "dc-2"]
    with pytest.raises(PlacementFailed):  # three instances that must not share a site, two sites
        wind.deploy(app("spread", "10.74.0.0/24", count=3, spread=True))
    nothing_of(cluster, "acme", "spread")

    again = ops.remove_site("dc-3")
    assert again["state"] == "removed" and again["op"] == result["op"]
    with pytest.raises(NotFound):
        ops.remove_site("nowhere")


def test_removing_a_site_with_vms_is_refused_listing_them_and_changes_nothing(cluster):
    acme, globex = cluster.client("acme"), cluster.client("globex")
    acme.deploy(app("pinned", "10.75.0.0/24", count=2, where="dc-2"))
    globex.deploy(app("theirs", "10.75.0.0/24", count=1, where="dc-2", tenant="globex"))
    before = acme.sites()
    ops_before = cluster.controller.store.operations("acme")

    ops = cluster.operator()
    with pytest.raises(SiteInUse) as refused:
        ops.remove_site("dc-2")
    text = str(refused.value)  # an operator administers every tenant: it sees them all
    assert "'dc-2'" in text and "3 VM(s)" in text and "acme/pinned" in text
    assert "acme.pinned.node-0" in text and "acme.pinned.node-1" in text
    assert "globex/theirs" in text and "undeploy" in text
    assert [(r["site"], r["vms"]) for r in acme.sites()] == [(r["site"], r["vms"]) for r in before]
    assert cluster.controller.store.operations("acme") == ops_before
    assert cluster.controller.removed_sites.names() == frozenset()
    assert acme.status("pinned")["running"] == 2

    acme.undeploy("pinned")
    globex.undeploy("theirs")
    assert ops.remove_site("dc-2")["state"] == "removed"


def test_a_client_cannot_remove_a_site_and_nothing_changes(cluster):
    globex = cluster.client("globex")
    with pytest.raises(Forbidden) as refused:
        globex.remove_site("dc-3")
    text = str(refused.value)
    assert "wind.ctl.remove_site" in text and "operator" in text and "client of tenant globex" in text
    assert "dc-3" in {r["site"] for r in globex.sites()}
    assert cluster.controller.removed_sites.names() == frozenset()
    assert cluster.controller_node.stats()["counters"]["forbidden"] >= 1


def test_a_restarted_agent_of_a_removed_site_rejoins_as_a_new_site(cluster):
    wind = cluster.client("acme")
    cluster.operator().remove_site("dc-1")
    old = cluster.agents["dc-1"]
    old.stop()
    cluster.agents["dc-1"] = Agent.start(old.node, old.config)  # a new incarnation
    wait_for(lambda: "dc-1" in {r["site"] for r in wind.sites()}, 10, "dc-1 to rejoin")
    assert cluster.controller.removed_sites.names() == frozenset()
    assert wind.deploy(app("back", "10.76.0.0/24", count=1, where="dc-1"))["operation"]["state"] == "done"
