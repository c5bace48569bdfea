#!/usr/bin/env python3
"""Fault injection: break a running Wind cluster on purpose and watch it converge back.

An in-process cluster (a controller and three simulated sites, each on its own node, over ZeroMQ
with CURVE) runs two applications: ``shop`` (restart: always, spread over the sites) and
``report`` (restart: never). Then, one fault at a time:

1. a VM is killed behind Wind's back (``Client.kill_instance``): its VM actor's supervisor
   re-creates it on the same site; the ``restart: never`` VM killed the same way stays down;
2. a site's agent is stopped: the site goes down, its VMs show ``lost`` but keep running;
   a new agent adopts them (same VM ids), nothing is started twice;
3. the controller is partitioned from a site, then healed: the site comes back with its VMs;
4. the site's driver loses its connection to the hypervisor: it reconnects, nothing changes.

Every wait polls a condition with a deadline (``wind_actors.testing.wait_for``). Run it:
``python examples/fault_injection.py``; it exits 0 when Wind converged after every fault.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.sim import SimHypervisor  # noqa: E402
from wind_actors.agent import Agent  # noqa: E402
from wind_actors.cluster import Cluster, SiteSpec  # noqa: E402
from wind_actors.log import configure_logging  # noqa: E402
from wind_actors.testing import wait_for  # noqa: E402

SITES = ("dc-1", "dc-2", "dc-3")
START = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - START:5.1f}s] {text}", flush=True)


def app(name: str, count: int, restart: str) -> dict[str, Any]:
    return {"tenant": "acme", "application": name, "placement": {"policy": "spread"},
            "components": {"node": {"image": "img", "vcpus": 1, "memory_mb": 128, "count": count,
                                    "restart": restart}}}


def vms(wind: Any, name: str) -> dict[str, dict[str, Any]]:
    return {vm["instance"]: vm for vm in wind.status(name)["vms"]}


def health(wind: Any) -> dict[str, str]:
    return {row["site"]: row["health"] for row in wind.sites()}


def all_running(wind: Any, name: str) -> bool:
    status = wind.status(name)
    return status["running"] == status["total"]


def main() -> int:
    configure_logging(level="ERROR")
    tag = uuid.uuid4().hex[:6]  # the sim's hypervisors are process-wide, by endpoint name
    endpoints = {s: f"example-{s}-{tag}" for s in SITES}
    sites = [SiteSpec(s, "sim", {"hosts": 4, "endpoint": endpoints[s]}, report_interval=0.2) for s in SITES]
    with Cluster.start(sites, tenants={"acme": "acme-fault-demo-token-0123"}, tick=0.1,
                       site_timeout=1.0, lost_site_grace=0) as cluster:
        wind = cluster.client("acme")
        wind.deploy(app("shop", 3, "always"))
        wind.deploy(app("report", 1, "never"))
        shop = vms(wind, "shop")
        say("deployed shop: " + ", ".join(f"{i} at {vm['site']}" for i, vm in sorted(shop.items())))
        say(f"deployed report: report node-0 at {vms(wind, 'report')['node-0']['site']}")

        # 1. A VM killed behind Wind's back.
        killed = wind.kill_instance("shop", "node-0")
        say(f"fault 1: killed {killed['killed']} at {killed['site']} ({killed['how']})")
        back = wait_for("shop node-0 to run again", lambda: (lambda vm: vm if vm["state"] == "running"
                        and vm["restarts"] >= 1 else None)(vms(wind, "shop")["node-0"]), 15)
        say(f"  shop node-0 is {back['state']} again at {back['site']} (restarts: {back['restarts']})")
        wind.kill_instance("report", "node-0")
        down = wait_for("report node-0 to be seen crashed",
                        lambda: (lambda vm: vm if vm["state"] == "crashed" else None)(vms(wind, "report")["node-0"]), 15)
        say(f"  report node-0 is {down['state']} and stays so (restart: {down['restart']})")

        # 2. A site's agent stops; a new one adopts what still runs.
        site = shop["node-1"]["site"]
        ids = {vm.name: vm.id for vm in SimHypervisor.named(endpoints[site]).list("example")}
        old = cluster.agents[site]
        old.stop()
        say(f"fault 2: stopped the agent of {site}")
        wait_for(f"{site} down", lambda: health(wind)[site] == "down", 15)
        say(f"  {site} is down; shop node-1 shows {vms(wind, 'shop')['node-1']['state']} (it still runs there)")
        cluster.agents[site] = Agent.start(old.node, old.config)
        wait_for("shop to run everywhere", lambda: health(wind)[site] == "up" and all_running(wind, "shop"), 15)
        after = {vm.name: vm.id for vm in SimHypervisor.named(endpoints[site]).list("example")}
        say(f"  a new agent adopted {len(after)} VM(s) at {site}; same VMs, none started twice: {after == ids}")

        # 3. A partition between the controller and a site, then healed.
        site = shop["node-2"]["site"]
        cluster.controller_node.partition(f"agent@{site}")
        say(f"fault 3: partitioned the controller from {site}")
        wait_for(f"{site} down", lambda: health(wind)[site] == "down", 15)
        say(f"  {site} is down; shop node-2 shows {vms(wind, 'shop')['node-2']['state']}")
        cluster.controller_node.heal(f"agent@{site}")
        wait_for("shop to run everywhere", lambda: health(wind)[site] == "up" and all_running(wind, "shop"), 15)
        say(f"  healed: {site} is up and shop runs {wind.status('shop')['running']}/3")

        # 4. A driver loses its connection to the hypervisor.
        dropped = SimHypervisor.named(endpoints[site]).drop_connections()
        say(f"fault 4: dropped {dropped} driver connection(s) at {site}")
        wait_for("the driver to reconnect", lambda: SimHypervisor.named(endpoints[site]).connections >= 1, 15)
        wait_for("shop to run everywhere", lambda: all_running(wind, "shop"), 15)
        say(f"  reconnected; shop runs {wind.status('shop')['running']}/3, "
            f"report stays {vms(wind, 'report')['node-0']['state']}")

        for name in ("shop", "report"):
            wind.undeploy(name)
        left = [vm.name for e in endpoints.values() for vm in SimHypervisor.named(e).list("example")]
        say(f"undeployed both; VMs left in the hypervisors: {len(left)}")
        ok = not left
    for endpoint in endpoints.values():
        SimHypervisor.forget(endpoint)
    say("converged after every fault" if ok else "NOT converged")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
