"""converge_ms through the running system (root): from a VM added by a deploy through the
controller to its FDB entries present in the kernel at every other site.

Three sites are network namespaces on an underlay bridge (overlay.testing.NamespaceLab); a real
``wind controller`` process and one real ``wind agent`` process per site run, each agent
realizing into its site's namespace. A tenant network already spans the three sites (one VM per
site). Each round deploys a one-VM application on that network through an in-process client
(the bench is the tenant) and polls every other site's VXLAN FDB with pyroute2 until the new
VM's MAC is there; the clock starts before the deploy request is sent. Rounds then undeploy.

Target: converge_ms < 1,000 (median and every round). Baseline, measured in the same run:
``deploy_reply_ms``, the deploy request's own round trip (validate, place, store, re-plan, push)
as the client sees it; ``converge_over_reply`` is the ratio. Prints human lines, then one JSON
object on the last line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "overlay_system"))

from pyroute2 import IPRoute  # noqa: E402

from system_harness import WindSystem, running_system, wait_for  # noqa: E402
from wind_actors.client import Client  # noqa: E402
from wind_actors.controller._overlay import nic_mac  # noqa: E402
from wind_actors.log import configure_logging  # noqa: E402

ROUNDS = int(os.environ.get("WIND_BENCH_ROUNDS", "15"))
TARGET_MS = 1000.0
CIDR = "10.70.0.0/16"


def descriptor(app: str, count: int) -> str:
    return f"""
tenant: acme
application: {app}
networks:
  net: {{cidr: {CIDR}}}
components:
  node:
    image: bench
    vcpus: 1
    memory_mb: 64
    count: {count}
    networks: [net]
    placement:
      anti_affinity: [node]
"""


def fdb_macs(ipr: IPRoute, vxlan: str) -> set[str]:
    index = ipr.link_lookup(ifname=vxlan)
    if not index:
        return set()
    return {m.get_attr("NDA_LLADDR") for m in ipr.fdb("dump", ifindex=index[0]) if m.get_attr("NDA_DST")}


def main() -> int:
    configure_logging("console", "WARNING")
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, running_system("172.31.50.0/24", Path(tmp)) as system:
        print("controller + 3 agents up; sites realize into", ", ".join(system.lab.site_netns(s) for s in "abc"))
        return run(system)


def run(system: WindSystem) -> int:
    client = Client.from_config(system.client_config("acme"))
    iprs = {s: IPRoute(netns=system.lab.site_netns(s), flags=0) for s in "abc"}
    try:
        client.deploy(descriptor("base", 3), wait=True, timeout=60)
        base = client.status("base")
        vxlan = "wx-" + base["vms"][0]["overlay"][0]["bridge"][3:]
        wait_for(lambda: all(len(fdb_macs(iprs[s], vxlan)) >= 3 for s in "abc"), 15, "the base network")
        print(f"tenant network {CIDR} spans sites a, b, c ({vxlan}); {ROUNDS} rounds of one VM each")

        converge, reply = [], []
        for i in range(ROUNDS):
            app = f"probe{i}"
            start = time.perf_counter()
            result = client.deploy(descriptor(app, 1), wait=False)
            replied = time.perf_counter()
            (slot,) = result["placement"]
            others = [s for s in "abc" if s != slot["site"]]
            vm = f"acme.{app}.{slot['instance']}"
            mac = nic_mac("acme", "net", vm)  # what the planner hands out (checked below)
            # Poll the kernel FDB (pyroute2) at every other site until the MAC is there.
            done: dict[str, float] = {}
            deadline = start + 10
            while len(done) < len(others) and time.perf_counter() < deadline:
                for s in others:
                    if s not in done and mac in fdb_macs(iprs[s], vxlan):
                        done[s] = time.perf_counter()
            if len(done) < len(others):
                raise SystemExit(f"round {i}: {mac} never reached {set(others) - set(done)}")
            ms = (max(done.values()) - start) * 1000
            assert next(v for v in client.status(app)["vms"] if v["name"] == vm)["overlay"][0]["mac"] == mac
            converge.append(ms)
            reply.append((replied - start) * 1000)
            print(f"round {i:2d}: VM at site {slot['site']}, FDB at {'+'.join(others)} after {ms:7.1f} ms "
                  f"(deploy reply {reply[-1]:.1f} ms)")
            client.undeploy(app, wait=True, timeout=60)
        client.undeploy("base", wait=True, timeout=60)
    finally:
        for ipr in iprs.values():
            ipr.close()
        client.close()

    med, worst = statistics.median(converge), max(converge)
    p90 = sorted(converge)[max(0, int(round(0.9 * len(converge))) - 1)]
    reply_med = statistics.median(reply)
    ok = worst < TARGET_MS
    print(f"converge_ms median {med:.1f}, p90 {p90:.1f}, max {worst:.1f} (target < {TARGET_MS:.0f}: "
          f"{'met' if ok else 'MISSED'}); deploy reply median {reply_med:.1f} ms, ratio {med / reply_med:.2f}")
    print(json.dumps({"bench": "overlay_converge", "converge_ms": round(med, 1), "converge_ms_p90": round(p90, 1),
                      "converge_ms_max": round(worst, 1), "rounds": len(converge), "target_ms": TARGET_MS,
                      "target_met": ok, "deploy_reply_ms": round(reply_med, 1),
                      "converge_over_reply": round(med / reply_med, 2)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
