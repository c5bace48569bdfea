"""The in-process cluster and the Python client API (what services embedding Wind use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.errors import DescriptorInvalid, NotFound, PlacementFailed, Unauthenticated

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cluster():
    """Function-scoped: the root conftest stops every actor after each test."""
    sites = [SiteSpec("edge", "libvirt", {"uri": f"test://{EXAMPLES / 'hosts' / 'small.xml'}"},
                      labels={"storage": "ssd"}),
             SiteSpec("dc-1", "sim", {"hosts": 20}), SiteSpec("dc-2", "sim", {"hosts": 20})]
    with Cluster.start(sites, tenants={"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"},
                       tick=0.1) as running:
        yield running


def test_the_client_deploys_the_demo_app_and_reports_where_each_vm_runs(cluster):
    wind = cluster.client("acme")
    seen = []
    result = wind.deploy(EXAMPLES / "apps" / "web.yaml", progress=seen.append)
    assert result["operation"]["state"] == "done" and seen
    status = wind.status("web")
    assert status["running"] == 4
    sites = {vm["instance"]: vm["site"] for vm in status["vms"]}
    assert sites["db-0"] == "edge"  # pinned by the storage=ssd label
    assert len({sites[f"frontend-{i}"] for i in range(3)}) == 3  # anti-affinity
    assert wind.undeploy("web")["state"] == "undeployed"
    with pytest.raises(NotFound):
        wind.status("web")


def test_client_errors_keep_their_structure(cluster):
    wind = cluster.client("acme")
    with pytest.raises(DescriptorInvalid) as invalid:
        wind.deploy("tenant: acme\napplication: x\ncomponents: {web: {vcpus: 0, image: a}}\n")
    assert [p.path for p in invalid.value.problems] == ["components.web.vcpus"]
    with pytest.raises(PlacementFailed) as failed:
        wind.deploy({"tenant": "acme", "application": "big",
                     "components": {"web": {"image": "a", "vcpus": 64, "count": 1}}})
    assert "nothing was placed" in str(failed.value)
    with pytest.raises(Unauthenticated):
        cluster.client("acme", token="not-a-real-token-at-all").sites()
    with pytest.raises(NotFound):
        cluster.client("globex").undeploy("web")


def test_the_reports_between_full_inventories_keep_the_vm_counts_true(cluster):
    """The agent reads every VM from its driver only every INVENTORY_INTERVAL; the reports in
    between count VMs from the VMs' own news, and must agree with what the hypervisor runs."""
    from wind_actors.agent._policy import ACTIVE
    from wind_actors.agent._site import INVENTORY_INTERVAL
    from wind_actors.protocol import ListVMs, site_actor_name
    from wind_actors.testing import wait_for

    wind = cluster.client("acme")
    assert INVENTORY_INTERVAL >= 10  # so the counts below come from the light reports

    def active(site):  # straight from the hypervisor (sim hypervisors may hold other tests' VMs)
        ref = cluster.controller_node.ref(f"{site_actor_name(site)}@agent@{site}")
        rows = ref.ask(ListVMs(managed_only=False), timeout=5)["vms"]
        return sum(1 for row in rows if row["state"] in ACTIVE)

    def agree():
        rows = {row["site"]: row for row in wind.sites()}
        return all(rows[s]["vms"] == active(s) for s in ("dc-1", "dc-2"))

    wind.deploy(EXAMPLES / "apps" / "web.yaml")
    wait_for("site reports to agree with the hypervisors after a deploy", agree, 15)
    wind.undeploy("web")
    wait_for("site reports to agree with the hypervisors after the undeploy", agree, 15)
