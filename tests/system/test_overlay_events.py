"""The controller tells the overlay planner what changed, and nothing else: in a running cluster,
a deploy or undeploy of an application on a tenant network re-plans that network only, while VM
state changes, an application without networks and an idle cloud cost the planner no work."""

from __future__ import annotations

import pytest

from wind_actors.agent._overlay import OVERLAY_PLANNER
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.controller._overlay import _Tick as _PlannerTick
from wind_actors.testing import wait_for

TOKENS = {"acme": "acme-token-0123456789"}


def _app(name: str, count: int, network: str | None = None) -> dict:
    comp = {"image": "x", "vcpus": 1, "memory_mb": 64, "count": count}
    doc = {"tenant": "acme", "application": name, "components": {"web": comp}}
    if network is not None:
        comp["networks"] = [network]
        doc["networks"] = {network: {"cidr": "10.44.0.0/24"}}
    return doc


@pytest.fixture
def cluster():
    sites = [SiteSpec(s, "sim", {"hosts": 4}, report_interval=0.2) for s in ("dc-1", "dc-2")]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1) as running:
        yield running


def _stats(cluster: Cluster) -> dict:
    return cluster.controller_node.whereis(OVERLAY_PLANNER).proxy().stats.get()


def test_overlay_work_follows_changes_of_networks_only(cluster):
    client = cluster.client("acme")
    before = _stats(cluster)
    client.deploy(_app("web", 3, network="front"))
    after = _stats(cluster)
    assert after["plans"] == before["plans"] + 1 and after["networks_planned"] == before["networks_planned"] + 1

    # Its VMs change state (killed, restarted): written to the store, no work for the overlay.
    client.kill_instance("web", "web-0")
    wait_for("web-0 to run again", lambda: client.status("web")["running"] == 3, 20)
    # An application without networks: deployed, changing state, undeployed: no work either.
    client.deploy(_app("batch", 2))
    client.kill_instance("batch", "web-1")
    wait_for("batch to run again", lambda: client.status("batch")["running"] == 2, 20)
    client.undeploy("batch")
    planner = cluster.controller_node.whereis(OVERLAY_PLANNER)
    for _ in range(10):
        planner.tell(_PlannerTick())
    planner.ask("flushed")
    assert _stats(cluster) == after

    # Another network: re-planned alone. Undeploying web re-plans "front" alone.
    client.deploy(_app("db", 1, network="back"))
    assert _stats(cluster)["networks_planned"] == after["networks_planned"] + 1
    client.undeploy("web")
    wait_for("web's network to be re-planned", lambda: _stats(cluster)["networks_planned"]
             == after["networks_planned"] + 2, 10)
    assert _stats(cluster)["plans"] == after["plans"] + 2
