#!/usr/bin/env python3
"""The Wind demo (`make demo`): three sites, one pool, one application, a crash, a clean exit.

It starts a controller and three agents as separate OS processes on 127.0.0.1 with CURVE on
(keys generated into a temporary directory): two libvirt test:/// hosts of different sizes and a
simulated data centre of 1,000 hosts. Then, using the real `wind` CLI as a user would, it shows
the pool, deploys examples/apps/web.yaml, shows the placements, kills one VM through its
hypervisor and watches it come back, shows that another tenant cannot see the application,
undeploys it, and shuts everything down cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rich.console import Console  # noqa: E402

from wind_actors.testing import wait_for
from wind_actors.cluster import ProcessCluster, free_port  # noqa: E402

console = Console(highlight=False)
SITES = ("edge-small", "edge-large", "dc-1")
NODES = ("controller@hq", *(f"agent@{s}" for s in SITES), "client@acme", "client@globex", "operator@hq")


def say(text: str) -> None:
    console.print(f"\n[bold cyan]==>[/] [bold]{text}[/]")


def run(cluster: ProcessCluster, *args: str, config: str = "client-acme", show: bool = True) -> str:
    """Run the wind CLI; show its output (tables, progress) as a user would see it."""
    console.print(f"[dim]$ wind {' '.join(args)}[/]")
    result = cluster.wind(*args, config=config)
    if show:
        sys.stdout.write(result.stdout)
        sys.stdout.write(result.stderr)
        sys.stdout.flush()
    if result.returncode != 0 and show:
        console.print(f"[yellow](exit code {result.returncode})[/]")
    return result.stdout if result.returncode == 0 else ""


def query(cluster: ProcessCluster, *args: str, config: str = "client-acme") -> object:
    result = cluster.wind(*args, "--json", config=config)
    if result.returncode != 0:
        raise RuntimeError(f"wind {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_until(what: str, condition, timeout: float = 30.0):  # noqa: ANN001
    return wait_for(what, condition, timeout, interval=0.3)  # each poll runs the CLI


def prepare(workdir: Path, port: int) -> ProcessCluster:
    """Copy examples/configs into the workdir with this run's port, absolute host files and keys."""
    cluster = ProcessCluster(workdir)
    cluster.ensure_keys(*NODES)
    for src in sorted((HERE / "configs").glob("*.toml")):
        text = src.read_text(encoding="utf-8")
        text = text.replace("127.0.0.1:7700", f"127.0.0.1:{port}")
        text = text.replace('host_xml = "../hosts/', f'host_xml = "{HERE / "hosts"}/')
        cluster.write_config(src.stem, text)
    return cluster


def main() -> int:
    started = time.monotonic()
    os.environ.setdefault("COLUMNS", "110")  # the CLI's tables, captured here, render this wide
    workdir = Path(tempfile.mkdtemp(prefix="wind-demo-"))
    cluster = prepare(workdir, free_port())
    ok = False
    try:
        say(f"Generated CURVE keys for {len(NODES)} nodes in {cluster.keys_dir}")
        say("Starting the controller and three site agents as separate processes")
        cluster.start("controller", "controller")
        console.print("  controller@hq      serving (desired state in SQLite)")
        for site in SITES:
            cluster.start(site, "agent")
            kind = "1,000 simulated hosts" if site == "dc-1" else "one libvirt test:/// host"
            console.print(f"  agent@{site:<12} running ({kind})")
        wait_until("three sites in the pool", lambda: len(query(cluster, "sites")) == 3)

        say("The logical pool: sites of very different sizes, one table")
        run(cluster, "sites")

        say("Deploying examples/apps/web.yaml: 3 front ends spread across sites (anti-affinity), "
            "1 database pinned to storage=ssd")
        run(cluster, "app", "deploy", str(HERE / "apps" / "web.yaml"))
        run(cluster, "app", "status", "web")
        wait_until("the next site reports", lambda: sum(row["vms"] for row in query(cluster, "sites")) == 4)
        run(cluster, "sites")

        say("Deploying it again is idempotent: nothing changes")
        run(cluster, "app", "deploy", str(HERE / "apps" / "web.yaml"), "--no-wait")

        status = query(cluster, "app", "status", "web")
        victim = next((v for v in status["vms"] if v["site"] != "dc-1" and v["component"] == "frontend"),
                      status["vms"][0])
        say(f"Killing {victim['name']} through the hypervisor of site {victim['site']} "
            "(behind Wind's back)")
        run(cluster, "app", "kill", "web", victim["instance"])
        back = wait_until(f"{victim['instance']} to come back", lambda: next(
            (v for v in query(cluster, "app", "status", "web")["vms"]
             if v["instance"] == victim["instance"] and v["state"] == "running" and v["restarts"] >= 1),
            None))
        console.print(f"  its VM actor failed, its supervisor restarted it, and the VM runs again "
                      f"(restarts: {back['restarts']}, restart policy: {back['restart']})")
        run(cluster, "app", "status", "web")

        say("Another tenant (globex) cannot see acme's application")
        run(cluster, "app", "status", "web", config="client-globex")

        say("Undeploying the application")
        run(cluster, "app", "undeploy", "web")
        run(cluster, "app", "status")
        wait_until("every site to report its VMs gone",
                   lambda: sum(row["vms"] for row in query(cluster, "sites")) == 0)
        run(cluster, "sites")
        ok = True
    except Exception as exc:  # noqa: BLE001 - the demo reports and still cleans up
        console.print(f"[bold red]demo failed:[/] {exc}")
        for name in ("controller", *SITES):
            console.print(f"[dim]--- log of {name} ---\n{cluster.log(name, 15)}[/]")
    finally:
        say("Shutting everything down")
        codes = cluster.stop_all()
        for name, code in codes.items():
            console.print(f"  {name:<12} exited with {code}")
        ok = ok and all(code == 0 for code in codes.values())
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"Demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
