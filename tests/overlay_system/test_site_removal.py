"""Removing a site from the running system (``wind sites remove``): a real controller and three
real agent processes, each realizing its site's overlay into its own network namespace.

Removing a site with VMs placed on it is refused and changes nothing. Removing an empty site takes
it out of the pool and the overlay plan: its agent tears down every Wind device in its namespace
(and nothing else), later networks no longer reach it, the removal survives a controller restart,
and only a restarted agent brings the site back, as a new and empty site.
"""

from __future__ import annotations

import os

import pytest
from system_harness import WindSystem, running_system, wait_for

from wind_actors.services import Store

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def app_yaml(name: str, cidr: str, count: int) -> str:
    return f"""
tenant: acme
application: {name}
networks:
  net: {{cidr: {cidr}}}
components:
  node:
    image: wind-test
    vcpus: 1
    memory_mb: 128
    count: {count}
    networks: [net]
    placement:
      anti_affinity: [node]
"""


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with running_system("172.31.41.0/24", tmp_path_factory.mktemp("wind")) as wind:
        yield wind


def site_names(system: WindSystem) -> list[str]:
    return sorted(row["site"] for row in system.sites_table())


def segment(system: WindSystem, app: dict) -> tuple[str, str]:
    bridge = app["vms"][0]["overlay"][0]["bridge"]
    return bridge, "wx-" + bridge[3:]


def test_removing_a_site_with_vms_is_refused_and_changes_nothing(system):
    system.deploy("acme", "held", app_yaml("held", "10.81.0.0/24", count=3))
    app = system.status("acme", "held")
    bridge, vxlan = segment(system, app)
    for site in "abc":
        wait_for(lambda: {bridge, vxlan} <= set(system.wind_devices(site)), 10, f"segment at {site}")
    devices_c = system.wind_devices("c")
    wait_for(lambda: ("00:00:00:00:00:00", system.underlay["c"]) in system.fdb("a", vxlan), 10, "a floods to c")
    fdb_a = system.fdb("a", vxlan)

    refused = system.run_wind("operator", "sites", "remove", "c")
    assert refused.returncode == 1
    assert "site 'c' cannot be removed" in refused.stderr and "acme/held" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert site_names(system) == ["a", "b", "c"]
    assert system.wind_devices("c") == devices_c  # same devices, same ifindexes
    assert system.fdb("a", vxlan) == fdb_a
    assert system.status("acme", "held")["running"] == 3
    system.wind("acme", "app", "undeploy", "held")
    for site in "abc":
        wait_for(lambda: not {bridge, vxlan} & set(system.wind_devices(site)), 10, f"segment gone at {site}")


def test_removing_an_empty_site_tears_down_its_wind_devices_and_keeps_it_out(system):
    ns_c = system.lab.site_netns("c")
    # Wind devices the agent at c does not know of (left over from a crash, say), and a device
    # of someone else's that must survive.
    system.lab.run(ns_c, ["ip", "link", "add", "wb-0abc01", "type", "bridge"])
    system.lab.run(ns_c, ["ip", "link", "add", "wx-0abc01", "type", "vxlan", "id", "7777", "dstport", "4789",
                          "local", system.underlay["c"], "nolearning"])
    system.lab.run(ns_c, ["ip", "link", "add", "keep0", "type", "bridge"])
    assert {"wb-0abc01", "wx-0abc01"} <= set(system.wind_devices("c"))

    removed = system.wind("operator", "sites", "remove", "c")
    assert removed["state"] == "removed" and removed["agent"] == "notified"
    assert site_names(system) == ["a", "b"]
    wait_for(lambda: not system.wind_devices("c"), 10, "every Wind device at c to go")
    assert "keep0" in system.lab.run(ns_c, ["ip", "-o", "link", "show"]).stdout
    store = Store(system.dir / "wind.db")
    try:
        wait_for(lambda: (store.get_operation("@operators", removed["op"]).detail or {}).get("teardown") == "confirmed",
                 10, "the agent to confirm the teardown")
    finally:
        store.close()

    # A network deployed now spans only a and b: neither floods to c.
    system.deploy("acme", "after", app_yaml("after", "10.82.0.0/24", count=2))
    app = system.status("acme", "after")
    assert sorted(vm["site"] for vm in app["vms"]) == ["a", "b"]
    bridge, vxlan = segment(system, app)
    for site, other in (("a", "b"), ("b", "a")):
        wait_for(lambda: ("00:00:00:00:00:00", system.underlay[other]) in system.fdb(site, vxlan), 10,
                 f"{site} floods to {other}")
        assert all(dst != system.underlay["c"] for _, dst in system.fdb(site, vxlan))
    assert not system.wind_devices("c")

    # A controller restart does not resurrect it, though its agent keeps reporting: the new
    # controller pushes the removed agent its empty state again (a no-op) and no more.
    agent_c = system.agents["c"]
    realized = agent_c.text().count('"overlay.realized"')
    system.controller.stop()
    system.controller.start().wait_ready()
    wait_for(lambda: agent_c.text().count('"overlay.realized"') > realized, 15,
             "the restarted controller to hear from the removed agent")
    wait_for(lambda: site_names(system) == ["a", "b"], 10, "the pool after the restart")
    assert site_names(system) == ["a", "b"] and not system.wind_devices("c")
    again = system.wind("operator", "sites", "remove", "c")
    assert again["state"] == "removed" and again["agent"] == "unchanged"
    system.wind("acme", "app", "undeploy", "after")


def test_a_restarted_agent_of_a_removed_site_rejoins_as_a_new_empty_site(system):
    if "c" in site_names(system):
        system.wind("operator", "sites", "remove", "c")
    system.restart_agent("c").wait_ready()
    wait_for(lambda: site_names(system) == ["a", "b", "c"], 15, "c to rejoin")
    system.deploy("acme", "rejoined", app_yaml("rejoined", "10.83.0.0/24", count=3))
    app = system.status("acme", "rejoined")
    assert sorted(vm["site"] for vm in app["vms"]) == ["a", "b", "c"]
    bridge, vxlan = segment(system, app)
    wait_for(lambda: {bridge, vxlan} <= set(system.wind_devices("c")), 10, "the new segment at c")
    system.wind("acme", "app", "undeploy", "rejoined")
