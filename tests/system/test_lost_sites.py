"""Lost sites: a site that stays unreachable past ``lost_site_grace`` has its VMs placed on other
sites; when it comes back, its stale copies are removed, not adopted (issue 5, follow-up).

A controller and five sim agents run as separate OS processes with CURVE on. Sites are lost the
two ways that happen: the agent process is killed with SIGKILL (its VMs die with it), or it is
frozen with SIGSTOP, a partition seen from the controller, and then thawed with SIGCONT (its VMs
are still there when it returns). The test polls the controller through a client (and runs the
real ``wind`` CLI once per test), always with a deadline.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from wind_actors.testing import wait_for
from wind_actors.client import Client
from wind_actors.cluster import ProcessCluster, free_port

TOKEN = "acme-lost-sites-token-0123456789"
PLAIN = ("north", "south", "east", "west")
SITES = {**{name: {} for name in PLAIN}, "vault": {"tier": "vault"}}
SITE_TIMEOUT, GRACE = 1.0, 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("wind-lost-sites")
    cluster = ProcessCluster(workdir)
    port = free_port()
    cluster.ensure_keys("controller@hq", "client@acme", *(f"agent@{s}" for s in SITES))
    cluster.write_config("controller", cluster.node_section("controller@hq", port, controller=True)
                         + f'[controller]\nstore = "wind.db"\nsite_timeout = {SITE_TIMEOUT}\ntick = 0.1\n'
                         + f'lost_site_grace = {GRACE}\n[controller.tenants]\nacme = "{TOKEN}"\n')
    for site, labels in SITES.items():
        label_text = "".join(f'{k} = "{v}"\n' for k, v in labels.items())
        cluster.write_config(site, cluster.node_section(f"agent@{site}", port)
                             + f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\ndriver = "sim"\n'
                             + f'report_interval = 0.2\n[agent.labels]\n{label_text}'
                             + "[agent.driver_options]\nhosts = 2\nhost_cpus = 4\n")
    cluster.write_config("client", cluster.node_section("client@acme", port)
                         + f'[client]\ncontroller = "controller@hq"\ntoken = "{TOKEN}"\n')
    # the CLI runs as its own node of tenant acme: one node name is one node, never two processes
    cluster.keyring.add("cli@acme", "client", "acme")
    cluster.write_config("cli", cluster.node_section("cli@acme", port)
                         + f'[client]\ncontroller = "controller@hq"\ntoken = "{TOKEN}"\n')
    try:
        cluster.start("controller", "controller")
        for site in SITES:
            cluster.start(site, "agent")
        yield cluster
    finally:
        for proc in cluster.procs.values():
            proc.send_signal(signal.SIGCONT)  # a frozen agent must be able to exit
        codes = cluster.stop_all()
        assert all(code is not None for code in codes.values())


class Wind:
    """A client of the cluster's controller that can reconnect after the controller restarts."""

    def __init__(self, config: Path) -> None:
        self._config = config
        self.client = Client.from_config(config)

    def reconnect(self) -> None:
        self.client.close()
        self.client = Client.from_config(self._config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def wind(cluster: ProcessCluster) -> Any:
    client = Wind(cluster.configs["client"])
    wait_for("every site to report", lambda: len(_up(client)) == len(SITES))
    yield client
    client.client.close()


def _up(client: Any) -> dict[str, dict[str, Any]]:
    return {row["site"]: row for row in client.sites() if row["health"] == "up"}


def _app(tmp_path: Path, name: str, component: str, count: int, where: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
tenant: acme
application: {name}
placement: {{policy: spread}}
components:
  {component}:
    image: {component}
    vcpus: 1
    memory_mb: 256
    count: {count}
    placement:
      where: {where}
      anti_affinity: [{component}]
""")
    return str(path)


def _vms(client: Any, app: str) -> dict[str, dict[str, Any]]:
    return {vm["instance"]: vm for vm in client.status(app)["vms"]}


def _each_instance_runs_exactly_once(client: Any) -> bool:
    """Every instance of every application runs, and the sites up hold no VM beyond them."""
    apps = client.status()
    held = sum(row["vms"] for row in _up(client).values())
    return all(a["running"] == a["total"] for a in apps) and held == sum(a["total"] for a in apps)


def test_vms_of_a_site_killed_with_sigkill_run_on_other_sites_after_the_grace(cluster, wind, tmp_path):
    wind.deploy(_app(tmp_path, "shop", "web", 3, f"{{sites: [{', '.join(PLAIN)}]}}"))
    victim = _vms(wind, "shop")["web-0"]["site"]
    others = {vm["instance"]: vm["site"] for vm in _vms(wind, "shop").values()}

    cluster.kill(victim)
    lost = wait_for("web-0 to show lost", lambda: (lambda vm: vm if vm["state"] == "lost" else None)(
        _vms(wind, "shop")["web-0"]), timeout=10)
    assert f"site {victim} unreachable" in lost["lost_reason"] and "lost_site_grace" in lost["lost_reason"]

    moved = wait_for("web-0 to run on another site", lambda: (
        lambda vms: vms if vms["web-0"]["site"] != victim and vms["web-0"]["state"] == "running" else None)(
        _vms(wind, "shop")), timeout=SITE_TIMEOUT + GRACE + 15)
    assert list(moved["web-0"]["moved_from"]) == [victim]
    assert {i: vm["site"] for i, vm in moved.items() if i != "web-0"} == \
        {i: s for i, s in others.items() if i != "web-0"}  # nothing else moved
    assert len({vm["site"] for vm in moved.values()}) == 3  # anti-affinity still holds
    human = cluster.wind("app", "status", "shop", config="cli")
    assert human.returncode == 0, human.stderr
    assert f"web-0 was rescheduled from lost site(s) {victim} to {moved['web-0']['site']}" in human.stdout

    cluster.kill("controller")  # the move is in the store: a restarted controller keeps it
    cluster.start("controller", "controller")
    wind.reconnect()
    wait_for("the restarted controller to see every VM running where it was moved", lambda: (
        lambda vms: {i: (vm["site"], vm["state"]) for i, vm in vms.items()}
        == {i: (vm["site"], "running") for i, vm in moved.items()})(_vms(wind, "shop")))

    cluster.start(victim, "agent")
    wait_for(f"{victim} to rejoin", lambda: victim in _up(wind))
    wait_for("each instance to run exactly once", lambda: _each_instance_runs_exactly_once(wind))
    assert _up(wind)[victim]["vms"] == 0
    assert {i: vm["site"] for i, vm in _vms(wind, "shop").items()} == \
        {i: vm["site"] for i, vm in moved.items()}  # the restarted site takes nothing back


def test_a_partitioned_site_that_returns_has_its_stale_copies_removed_not_adopted(cluster, wind, tmp_path):
    wind.deploy(_app(tmp_path, "blog", "post", 2, f"{{sites: [{', '.join(PLAIN)}]}}"))
    victim = _vms(wind, "blog")["post-0"]["site"]
    held = _up(wind)[victim]["vms"]
    assert held >= 1
    proc = cluster.procs[victim]

    proc.send_signal(signal.SIGSTOP)  # the agent and its VMs live on, unreachable
    try:
        wait_for(f"every VM to leave {victim}", lambda: all(
            vm["site"] != victim and vm["state"] == "running" for app in wind.status() for vm in app["vms"]),
            timeout=SITE_TIMEOUT + GRACE + 15)
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_for(f"{victim} to report again", lambda: victim in _up(wind))
    wait_for(f"the {held} stale copies at {victim} to be removed", lambda: _up(wind)[victim]["vms"] == 0)
    wait_for("each instance to run exactly once", lambda: _each_instance_runs_exactly_once(wind))
    removals = [line for line in cluster.log("controller", tail=5000).splitlines()
                if "app.removing_extra_vms" in line and f"site={victim}" in line]
    assert removals  # the copies were there when the site returned, and were removed
    assert all(vm["site"] != victim for app in wind.status() for vm in app["vms"])


def test_an_application_pinned_to_the_lost_site_stays_lost_with_the_schedulers_explanation(
        cluster, wind, tmp_path):
    wind.deploy(_app(tmp_path, "ledger", "db", 1, "{labels: {tier: vault}}"))
    assert _vms(wind, "ledger")["db-0"]["site"] == "vault"

    cluster.kill("vault")
    stuck = wait_for("db-0 to be reported stuck", lambda: (
        lambda vm: vm if "cannot reschedule" in vm.get("lost_reason", "") else None)(_vms(wind, "ledger")["db-0"]),
        timeout=SITE_TIMEOUT + GRACE + 15)
    assert stuck["state"] == "lost" and stuck["site"] == "vault"
    assert "labels tier=vault" in stuck["lost_reason"] and "health (down)" in stuck["lost_reason"]
    result = cluster.wind("app", "status", "ledger", "--json", config="cli")
    def timeless(detail: str) -> str:  # "unreachable for 2 s" grows between the two reads
        return re.sub(r"unreachable for \d+ s", "unreachable for N s", detail)

    detail = json.loads(result.stdout.strip().splitlines()[-1])["vms"][0]["detail"]
    assert timeless(detail) == timeless(stuck["detail"])
    human = cluster.wind("app", "status", "ledger", config="cli")
    assert "db-0 is lost: site vault unreachable" in human.stdout and "tier=vault" in human.stdout

    cluster.start("vault", "agent")  # it comes back empty: the VM is started there again
    back = wait_for("db-0 to run at vault again", lambda: (
        lambda vm: vm if vm["state"] == "running" else None)(_vms(wind, "ledger")["db-0"]))
    assert back["site"] == "vault" and "lost_reason" not in back
    wait_for("each instance to run exactly once", lambda: _each_instance_runs_exactly_once(wind))
