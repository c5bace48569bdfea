#!/usr/bin/env python3
"""deploy_vms_per_s: end to end, from `wind app deploy` to every VM running, for 1,000 VMs.

A controller and two simulated data-centre sites (500 hosts each) run as separate OS processes
on 127.0.0.1 with CURVE on; the timed command is the real CLI, `wind app deploy FILE`, which
returns once the controller reports every VM running. The baseline, measured in the same run,
is the floor under it: the same 1,000 define+start calls made straight on a SimDriver in one
process (no actors, no network, no scheduler). Undeploy is timed too. JSON on the last line.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers import VMSpec  # noqa: E402
from drivers.sim import SimDriver  # noqa: E402
from wind_actors.cluster import ProcessCluster, free_port  # noqa: E402

VMS = 1000
SITES = ("dc-1", "dc-2")
TOKEN = "bench-token-0123456789abcdef"


def baseline() -> float:
    driver = SimDriver(hosts=500)
    driver.connect()
    t0 = time.perf_counter()
    for i in range(VMS):
        name = f"bench.app.web-{i}"
        driver.define(VMSpec(name, 1, 128, metadata={"tenant": "bench"}))
        driver.start(name)
    return VMS / (time.perf_counter() - t0)


def main() -> int:
    raw = baseline()
    print(f"baseline: {VMS} define+start straight on a SimDriver: {raw:,.0f} VMs/s")
    workdir = Path(tempfile.mkdtemp(prefix="wind-bench-deploy-"))
    cluster = ProcessCluster(workdir)
    port = free_port()
    try:
        cluster.ensure_keys("controller@hq", "client@bench", *(f"agent@{s}" for s in SITES))
        cluster.write_config("controller", cluster.node_section("controller@hq", port, controller=True)
                             + f'[controller]\nstore = "wind.db"\ntick = 0.2\n[controller.tenants]\nbench = "{TOKEN}"\n')
        for site in SITES:
            cluster.write_config(site, cluster.node_section(f"agent@{site}", port)
                                 + f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\ndriver = "sim"\n'
                                 f'report_interval = 0.5\nvm_restart_intensity = 10000\n'
                                 f'[agent.driver_options]\nhosts = 500\n')
        cluster.write_config("client", cluster.node_section("client@bench", port)
                             + f'[client]\ncontroller = "controller@hq"\ntoken = "{TOKEN}"\ntimeout = 120\n')
        app = workdir / "app.yaml"
        app.write_text(f"tenant: bench\napplication: web\nplacement: {{policy: spread}}\ncomponents:\n"
                       f"  web: {{image: web, vcpus: 1, memory_mb: 128, count: {VMS}, restart: always}}\n")
        cluster.start("controller", "controller")
        for site in SITES:
            cluster.start(site, "agent")
        deadline = time.monotonic() + 30
        while True:
            out = cluster.wind("sites", "--json", config="client")
            if out.returncode == 0 and len(json.loads(out.stdout.strip().splitlines()[-1])) == len(SITES):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sites did not report: {out.stderr}")
            time.sleep(0.2)  # polling with a deadline
        t0 = time.perf_counter()
        result = cluster.wind("app", "deploy", str(app), "--json", config="client")
        deploy_s = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"deploy failed: {result.stderr}")
        op = json.loads(result.stdout.strip().splitlines()[-1])["operation"]
        assert op["state"] == "done" and op["detail"]["running"] == VMS, op
        per_s = VMS / deploy_s
        print(f"wind app deploy of {VMS} VMs on {len(SITES)} sim sites, all running: "
              f"{deploy_s:.2f} s = {per_s:,.0f} VMs/s ({per_s / raw:.3f} of the baseline)")
        t0 = time.perf_counter()
        result = cluster.wind("app", "undeploy", "web", "--json", config="client")
        undeploy_s = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"undeploy failed: {result.stderr}")
        print(f"wind app undeploy of {VMS} VMs: {undeploy_s:.2f} s = {VMS / undeploy_s:,.0f} VMs/s")
    finally:
        codes = cluster.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"deploy_vms_per_s": round(per_s, 1), "deploy_s": round(deploy_s, 3), "vms": VMS,
                      "sites": len(SITES), "baseline_direct_vms_per_s": round(raw, 1),
                      "ratio_vs_direct": round(per_s / raw, 4),
                      "undeploy_vms_per_s": round(VMS / undeploy_s, 1),
                      "clean_exit": all(c == 0 for c in codes.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
