"""Regressions found by the cluster fault model (property_tests/test_cluster_faults.py), each
replayed here as a plain test on an in-process cluster (a controller and three sim agents on
their own nodes, over ZeroMQ with CURVE). Nothing is mocked."""

from __future__ import annotations

import uuid

import pytest

from drivers.sim import SimHypervisor
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.errors import NotFound
from wind_actors.protocol import ListVMs, site_actor_name
from wind_actors.testing import wait_for

TOKENS = {"acme": "acme-regress-token-0123456789"}
SITES = ("dc-1", "dc-2", "dc-3")


@pytest.fixture
def cluster():
    tag = uuid.uuid4().hex[:8]
    endpoints = {s: f"regress-{s}-{tag}" for s in SITES}
    sites = [SiteSpec(s, "sim", {"hosts": 2, "endpoint": endpoints[s]}, report_interval=0.1) for s in SITES]
    try:
        with Cluster.start(sites, tenants=TOKENS, tick=0.1, site_timeout=1.0, lost_site_grace=0) as running:
            running.hypervisors = {s: SimHypervisor.named(e) for s, e in endpoints.items()}
            yield running
    finally:
        for endpoint in endpoints.values():
            SimHypervisor.forget(endpoint)


def _gone(wind, app: str) -> bool:
    try:
        wind.status(app)
    except NotFound:
        return True
    return False


def test_an_undeploy_started_as_a_partition_begins_finishes_soon_after_it_heals(cluster):
    """The application actor used to ask the cut-off site again on every queued (stale) tick,
    over a link that was reconnecting; a partition drops such an ask and, when the link comes
    back, nothing fails it, so the undeploy hung for REMOVE_TIMEOUT (120 s) after the heal."""
    wind = cluster.client("acme")
    reply = wind.deploy({"tenant": "acme", "application": "web", "placement": {"policy": "spread"},
                         "components": {"svc": {"image": "i", "vcpus": 1, "memory_mb": 64, "count": 3}}})
    assert {slot["site"] for slot in reply["placement"]} == set(SITES)

    cluster.controller_node.partition("agent@dc-3")
    assert wind.undeploy("web", wait=False)["state"] == "undeploying"
    wait_for("dc-3 down in the pool",
             lambda: {r["site"]: r["health"] for r in wind.sites()}["dc-3"] == "down", 10)
    assert not _gone(wind, "web")  # its VM on dc-3 could not be removed yet
    cluster.controller_node.heal("agent@dc-3")

    wait_for("the undeploy to finish", lambda: _gone(wind, "web"), 15)
    assert [vm.name for hv in cluster.hypervisors.values() for vm in hv.list("test")] == []


def test_an_undeploy_right_after_a_deploy_leaves_no_vm_behind(cluster):
    """The undeploy used to remove only the VMs the sites had reported; the ones its deploy had
    just asked for were created after it said ``undeployed`` and ran until the orphan sweep."""
    wind = cluster.client("acme")
    wind.deploy({"tenant": "acme", "application": "blink", "placement": {"policy": "spread"},
                 "components": {"svc": {"image": "i", "vcpus": 1, "memory_mb": 64, "count": 3}}},
                wait=False)
    assert wind.undeploy("blink")["state"] == "undeployed"

    node = cluster.controller_node
    for site, agent in cluster.agents.items():
        # A round trip after the controller's EnsureVMs/RemoveVMs: the site has handled both.
        listed = node.ref(f"{site_actor_name(site)}@{agent.node.name}").ask(ListVMs(False), timeout=10)
        assert list(listed["vms"]) == [] and agent.ctx.vm_names() == [], (site, listed)
    assert [vm.name for hv in cluster.hypervisors.values() for vm in hv.list("test")] == []
