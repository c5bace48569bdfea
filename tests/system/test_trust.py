"""Attacks on a running cluster, each as a test: refused, counted, and nothing changed.

A controller and two sim sites in-process (each on its own node over ZeroMQ with CURVE, each
node with its own trust folder by role), and clients of two tenants.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.controller._probes import probe_peers
from wind_actors.errors import Forbidden, NodeDownError, AskTimeout
from wind_actors.protocol import EnsureVMs, ListVMs, ReportAck, SiteReport, site_actor_name
from wind_actors.runtime import AGENT, Identity
from wind_actors.testing import wait_for

TOKENS = {"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}
APP = {"tenant": "acme", "application": "web",
       "components": {"web": {"image": "x", "vcpus": 1, "memory_mb": 64, "count": 2}}}


@pytest.fixture
def cluster():
    sites = [SiteSpec(s, "sim", {"hosts": 4}, report_interval=0.2) for s in ("dc-1", "dc-2")]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1) as running:
        running.client("acme").deploy(APP)
        yield running


def counters(cluster: Cluster, node: str = "controller") -> dict[str, int]:
    target = cluster.controller_node if node == "controller" else cluster.agents[node].node
    return target.stats()["counters"]


def test_a_stolen_token_is_useless_without_its_tenants_key(cluster):
    thief = cluster.client("acme", key_of="globex")  # globex's client key, acme's token
    before = counters(cluster).get("forbidden", 0)
    with pytest.raises(Forbidden, match="only use its own tenant's token"):
        thief.status("web")
    with pytest.raises(Forbidden):
        thief.undeploy("web")
    assert counters(cluster)["forbidden"] >= before + 2
    assert cluster.client("acme").status("web")["running"] == 2


def _vouched(cluster: Cluster) -> bool:
    """Whether the controller has vouched dc-1 and dc-2 to each other (their probe peers)."""
    return ("agent@dc-2" in cluster.agents["dc-1"].node.trust.vouched()
            and "agent@dc-1" in cluster.agents["dc-2"].node.trust.vouched())


def test_agents_file_no_other_agents_key_yet_measure_rtt_to_each_other(cluster):
    for site, other in (("dc-1", "dc-2"), ("dc-2", "dc-1")):
        folder = Path(cluster.agents[site].node.config.keys_dir)
        assert {p.name for p in folder.rglob("*.key")} == {"controller@local.key", f"agent@{site}.key"}
        assert not (folder / "agent" / other).exists()
    wait_for("the controller to vouch", lambda: _vouched(cluster), 10)
    assert cluster.agents["dc-1"].node.trust.vouched() == {"agent@dc-2": Identity("agent@dc-2", AGENT, "dc-2")}
    for site, other in (("dc-1", "agent@dc-2"), ("dc-2", "agent@dc-1")):
        wait_for(f"{site}'s RTT to {other}", lambda: other in cluster.agents[site].node.peer_rtt_ms(), 10)


def test_another_agent_cannot_command_a_site(cluster):
    # agents trust each other's keys only as the controller vouches (RTT probe peers)
    wait_for("the controller to vouch", lambda: _vouched(cluster), 10)
    other = cluster.agents["dc-2"].node
    site = other.ref(f"{site_actor_name('dc-1')}@agent@dc-1")
    spec = {"spec": {"name": "intruder", "vcpus": 1, "memory_mb": 64, "image": "x"}, "restart": "never"}
    with pytest.raises(Forbidden, match="may be sent by controller"):
        site.ask(EnsureVMs((spec,)), timeout=5)
    with pytest.raises(Forbidden):
        site.ask(ListVMs(), timeout=5)
    assert counters(cluster, "dc-1")["forbidden"] >= 2
    names = cluster.controller_node.ref(f"{site_actor_name('dc-1')}@agent@dc-1").ask(ListVMs(), timeout=5)
    assert "intruder" not in {vm["name"] for vm in names["vms"]}


def test_a_client_key_is_not_even_trusted_by_an_agent(cluster):
    client = cluster.client("acme").node
    # the attacker even knows the agent's public key (it is no secret)
    folder = Path(client.config.keys_dir) / "agent" / "dc-1"
    folder.mkdir(parents=True)
    shutil.copy(cluster.keyring.vault / "agent" / "dc-1" / "agent@dc-1.key", folder)
    client.connect("agent@dc-1", cluster.agents["dc-1"].node.address, wait=False)
    with pytest.raises((NodeDownError, AskTimeout)):
        client.ref(f"{site_actor_name('dc-1')}@agent@dc-1").ask(ListVMs(), timeout=2)
    wait_for("the CURVE refusal", lambda: cluster.agents["dc-1"].node.stats()["curve_rejected"] >= 1, 5)


def _sites(cluster: Cluster) -> dict[str, dict]:
    return {row["site"]: row for row in cluster.client("acme").sites()}


def test_an_agent_cannot_report_for_another_site(cluster):
    node = cluster.agents["dc-1"].node
    controller = node.ref("controller@controller@local")
    before = counters(cluster).get("forbidden", 0)
    fake = SiteReport("dc-2", node.ref(f"{site_actor_name('dc-2')}@agent@dc-1"), time.time(),
                      "forged", None, 1, 0, 1, (), (), {"hosts": [], "health": "down"})
    controller.tell(fake)
    controller.tell(SiteReport("dc-2", node.ref(f"{site_actor_name('dc-2')}@agent@dc-2"), time.time(),
                               "forged", 0, 10**9, 0, 1,
                               ({"name": "acme.web.web-0", "state": "failed"},), (), None))
    wait_for("both refusals", lambda: counters(cluster).get("forbidden", 0) >= before + 2, 5)
    assert _sites(cluster)["dc-2"]["agent"] == "agent@dc-2"
    assert cluster.client("acme").status("web")["running"] == 2


def test_an_agent_cannot_name_another_node_as_its_sites_agent(cluster):
    node = cluster.agents["dc-1"].node
    controller = node.ref("controller@controller@local")
    before = counters(cluster).get("bad_report", 0)
    # its own site, but pointing the controller's commands at the other agent's node
    hijack = SiteReport("dc-1", node.ref(f"{site_actor_name('dc-2')}@agent@dc-2"), time.time(),
                        "hijack", None, 10**9, 0, 1, (), (), {"hosts": [], "health": "up"})
    controller.tell(hijack)
    wait_for("the refusal", lambda: counters(cluster).get("bad_report", 0) > before, 5)
    assert _sites(cluster)["dc-1"]["agent"] == "agent@dc-1"


def test_a_malformed_report_from_a_trusted_agent_is_dropped_and_the_controller_lives_on(cluster):
    node = cluster.agents["dc-1"].node
    controller_ref = cluster.controller_node.whereis("controller")
    before = counters(cluster).get("bad_report", 0)
    broken = SiteReport("dc-1", node.ref(f"{site_actor_name('dc-1')}@agent@dc-1"), time.time(),
                        "broken", None, 10**9 + 1, 0, 1, ({"state": "running"},), (),
                        {"no": "hosts here"})
    node.ref("controller@controller@local").tell(broken)
    wait_for("the drop", lambda: counters(cluster).get("bad_report", 0) > before, 5)
    assert cluster.controller_node.whereis("controller") is controller_ref  # never restarted
    assert cluster.client("acme").status("web")["running"] == 2


def test_only_the_controller_may_acknowledge_a_sites_reports(cluster):
    wait_for("the controller to vouch", lambda: _vouched(cluster), 10)
    other = cluster.agents["dc-2"].node
    before = counters(cluster, "dc-1").get("forbidden", 0)
    site = other.ref(f"{site_actor_name('dc-1')}@agent@dc-1")
    site.tell(ReportAck("dc-1", "any-epoch", None, resync=True))  # would force resyncs forever
    wait_for("the refusal", lambda: counters(cluster, "dc-1").get("forbidden", 0) > before, 5)


def test_a_site_probes_a_bounded_set_of_peers_its_overlay_neighbours_first():
    sites = [f"s{i}" for i in range(100)]
    chosen = probe_peers("s0", sites, neighbours={"s7", "s42"}, limit=8)
    assert set(chosen[:2]) == {"s42", "s7"} and len(chosen) == 8 and "s0" not in chosen
    assert chosen == probe_peers("s0", reversed(sites), neighbours={"s42", "s7"}, limit=8)
    # the probed pairs join every site into one graph, so a missing RTT can be inferred on a path
    edges = {s: set(probe_peers(s, sites, (), limit=8)) for s in sites}
    reached, frontier = {"s0"}, ["s0"]
    while frontier:
        here = frontier.pop()
        for there in edges[here] | {o for o, e in edges.items() if here in e}:
            if there not in reached:
                reached.add(there)
                frontier.append(there)
    assert reached == set(sites)
