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
    between count VMs from the VMs' own news, and must agree with the hypervisor."""
    from wind_actors.agent._site import INVENTORY_INTERVAL
    from wind_actors.testing import wait_for

    wind = cluster.client("acme")
    assert INVENTORY_INTERVAL >= 10  # so the counts below come from the light reports
    wind.deploy(EXAMPLES / "apps" / "web.yaml")
    placed = {"dc-1": 0, "dc-2": 0}  # the sim sites: edge's libvirt test driver runs a VM of its own
    for vm in wind.status("web")["vms"]:
        if vm["site"] in placed:
            placed[vm["site"]] += 1

    def counts():
        rows = {row["site"]: row for row in wind.sites()}
        return {s: rows[s]["vms"] for s in placed} == placed and rows

    rows = wait_for("site reports to count every deployed VM", counts, 15)
    assert sum(placed.values()) == 2 and rows["dc-1"]["used"]["cpus"] + rows["dc-2"]["used"]["cpus"] > 0
    wind.undeploy("web")
    wait_for("site reports to count no VM",
             lambda: all(r["vms"] == 0 for r in wind.sites() if r["site"] in placed), 15)
