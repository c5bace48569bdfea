"""The overlay in the running system: a real controller and three real agent processes, each
realizing its site's overlay into its own network namespace, with tenants deploying through the
``wind`` CLI.

VMs run on the sim driver (no guest OS here); each VM's NIC is stood in for by a veth endpoint in
a namespace of its own, plugged into the bridge the controller attached the VM to, with the MAC
and address ``wind app status --json`` shows. Traffic is real ICMP over real VXLAN between the
site namespaces. (A real QEMU guest on the overlay: tests/drivers/test_qemu_overlay.py.)
"""

from __future__ import annotations

import os
import re

import pytest
from system_harness import running_system, wait_for


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def app_yaml(tenant: str, name: str, cidr: str, count: int = 3, network: str = "net",
             extra: str = "") -> str:
    return f"""
tenant: {tenant}
application: {name}
networks:
  {network}: {{cidr: {cidr}}}
components:
  node:
    image: wind-test
    vcpus: 1
    memory_mb: 128
    count: {count}
    networks: [{network}]
    placement:
      anti_affinity: [node]
{extra}"""


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with running_system("172.31.40.0/24", tmp_path_factory.mktemp("wind")) as wind:
        yield wind


def by_site(app: dict) -> dict[str, dict]:
    return {vm["site"]: vm for vm in app["vms"]}


def test_vms_at_three_sites_ping_each_other_over_a_tenant_network(system):
    system.deploy("acme", "ping", app_yaml("acme", "ping", "10.61.0.0/24"))
    app = system.status("acme", "ping")
    assert sorted(by_site(app)) == ["a", "b", "c"]  # anti-affinity: one VM per site
    ips = system.plug_vms(app)
    a, b, c = (by_site(app)[s]["name"] for s in "abc")

    # The first probe may race the other sites' FDB: poll, then demand clean pings.
    wait_for(lambda: system.lab.ping(system.lab_vm(a), ips[b]), 10, "a -> b")
    assert system.lab.ping(system.lab_vm(a), ips[b], count=2)
    assert system.lab.ping(system.lab_vm(b), ips[c], count=2)
    assert system.lab.ping(system.lab_vm(c), ips[a], count=2)
    system.wind("acme", "app", "undeploy", "ping")


def test_status_json_shows_each_vms_overlay_address_mac_and_attach_point(system):
    system.deploy("acme", "show", app_yaml("acme", "show", "10.62.0.0/24", count=2))
    app = system.status("acme", "show")
    addresses = set()
    for vm in app["vms"]:
        (nic,) = vm["overlay"]
        assert nic["network"] == "net" and nic["prefixlen"] == 24
        assert nic["ip"].startswith("10.62.0.")
        assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", nic["mac"])
        assert re.fullmatch(r"wb-[0-9a-f]{6}", nic["bridge"])
        addresses.add(nic["ip"])
    assert len(addresses) == 2
    # The same network has the same bridge (its VNI) at every site.
    assert len({vm["overlay"][0]["bridge"] for vm in app["vms"]}) == 1
    system.wind("acme", "app", "undeploy", "show")


def test_a_second_tenant_on_an_overlapping_cidr_cannot_reach_the_first(system):
    system.deploy("acme", "iso", app_yaml("acme", "iso", "10.63.0.0/24", network="shared"))
    system.deploy("globex", "iso", app_yaml("globex", "iso", "10.63.0.0/24", count=2, network="shared"))
    acme, globex = system.status("acme", "iso"), system.status("globex", "iso")
    acme_ips, globex_ips = system.plug_vms(acme), system.plug_vms(globex)
    assert set(globex_ips.values()) < set(acme_ips.values())  # the same addresses, two tenants
    assert acme["vms"][0]["overlay"][0]["bridge"] != globex["vms"][0]["overlay"][0]["bridge"]

    g1, g2 = (vm["name"] for vm in globex["vms"])
    wait_for(lambda: system.lab.ping(system.lab_vm(g1), globex_ips[g2]), 10, "globex VMs reach each other")
    only_acme = (set(acme_ips.values()) - set(globex_ips.values())).pop()
    for g in (g1, g2):
        assert not system.lab.ping(system.lab_vm(g), only_acme, count=2, wait=0.5)
    # And the globex neighbour behind a shared address is globex's own NIC, never acme's.
    neigh = system.lab.run(system.lab.vm_netns(system.lab_vm(g1)), ["ip", "neigh", "show", globex_ips[g2]]).stdout
    assert f"lladdr {globex['vms'][1]['overlay'][0]['mac']}" in neigh
    system.wind("acme", "app", "undeploy", "iso")
    system.wind("globex", "app", "undeploy", "iso")


def test_undeploying_removes_the_networks_devices_at_every_site(system):
    system.deploy("acme", "gone", app_yaml("acme", "gone", "10.64.0.0/24"))
    app = system.status("acme", "gone")
    bridge = app["vms"][0]["overlay"][0]["bridge"]
    vxlan = "wx-" + bridge[3:]
    for site in "abc":
        wait_for(lambda: {bridge, vxlan} <= set(system.wind_devices(site)), 10, f"segment at {site}")
    others = {s: set(system.wind_devices(s)) - {bridge, vxlan} for s in "abc"}

    system.wind("acme", "app", "undeploy", "gone")
    for site in "abc":
        wait_for(lambda: not {bridge, vxlan} & set(system.wind_devices(site)), 10, f"segment gone at {site}")
        assert set(system.wind_devices(site)) == others[site]  # nothing else was touched
    assert all(a["app"] != "gone" for a in system.wind("acme", "app", "status"))


def test_restarting_an_agent_does_not_interrupt_traffic_or_rebuild_devices(system):
    system.deploy("acme", "steady", app_yaml("acme", "steady", "10.65.0.0/24", count=2))
    app = system.status("acme", "steady")
    ips = system.plug_vms(app)
    (v1, s1), (v2, s2) = ((vm["name"], vm["site"]) for vm in app["vms"])
    wait_for(lambda: system.lab.ping(system.lab_vm(v1), ips[v2]), 10, "traffic before the restart")
    before = system.wind_devices(s2)

    ping = system.lab.spawn_ping(system.lab_vm(v1), ips[v2], count=80, interval=0.05)  # ~4 s of probes
    agent = system.restart_agent(s2)
    agent.wait_ready()
    # The new agent got its full state from the controller and realized it (a no-op).
    wait_for(lambda: '"overlay.realized"' in agent.text(), 10, "the restarted agent to realize")
    out, _ = ping.communicate(timeout=30)
    assert " 0% packet loss" in out, out
    assert system.wind_devices(s2) == before  # same devices, same ifindexes: nothing rebuilt
    assert re.search(r'"created": 0.*"removed": 0|"removed": 0.*"created": 0',
                     [ln for ln in agent.text().splitlines() if '"overlay.realized"' in ln][-1])
    system.wind("acme", "app", "undeploy", "steady")


def test_sites_measure_rtt_to_each_other_and_max_latency_ms_is_honoured(system):
    # Each agent's heartbeats measure the RTT to every other agent (the overlay planner hands
    # them each other's addresses and vouches for their keys: no agent's trust folder holds
    # another agent's key); `wind sites` shows it per peer node.
    def others(site: str) -> set[str]:
        return {f"agent@{s}" for s in "abc" if s != site}

    def full_matrix():
        rows = system.sites_table()
        return rows if all(set(r["rtt_ms"]) >= others(r["site"]) for r in rows) else None

    for site in "abc":
        folder = system.keyring.trust_dir(f"agent@{site}")
        assert not [p for p in folder.rglob("*.key") if p.stem.startswith("agent@") and p.stem != f"agent@{site}"]
    rows = wait_for(full_matrix, 15, "every site to report its RTT to the other two")
    for row in rows:
        assert all(0 < row["rtt_ms"][peer] < 100 for peer in others(row["site"]))

    bound = "      max_latency_ms: [{component: node, ms: %s}]\n"
    tight = app_yaml("acme", "tight", "10.66.0.0/24", count=2).replace(
        "      anti_affinity: [node]\n", "      anti_affinity: [node]\n" + bound % "0.0001")
    path = system.dir / "tight.yaml"
    path.write_text(tight)
    refused = system.run_wind("acme", "app", "deploy", str(path), timeout=60)
    assert refused.returncode != 0 and "max_latency_ms" in refused.stdout + refused.stderr

    loose = app_yaml("acme", "loose", "10.66.0.0/24", count=2).replace(
        "      anti_affinity: [node]\n", "      anti_affinity: [node]\n" + bound % "1000")
    system.deploy("acme", "loose", loose)
    assert len(by_site(system.status("acme", "loose"))) == 2
    system.wind("acme", "app", "undeploy", "loose")
