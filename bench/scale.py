#!/usr/bin/env python3
"""Scale: a data-centre site of 10,000 and 50,000 VMs, and 1,000 sites of 10 VMs each.

Everything runs as separate OS processes on 127.0.0.1 with CURVE on and default settings (no
report interval, tick or frame limit is tuned): the controller is ``wind controller``; a site is
``wind agent`` with the sim driver, except that the 1,000 sites share a few processes (each
process runs many agent nodes, each with its own ZeroMQ context, keys and supervision tree),
since 1,000 Python interpreters do not fit in this machine's memory. The timed deploy and
undeploy are the real CLI (``wind app deploy FILE``, which returns once every VM runs).

Figures per scenario: ``deploy_vms_per_s`` end to end; ``agent_kb_per_vm`` (agent processes'
resident memory after the deploy less before it, per VM) and the agents' thread count;
``idle_controller_cores`` and ``idle_agent_cores`` (CPU time over a quiet window after the deploy,
from /proc); ``sites_up`` (every site ``up`` once deployed); ``status_ok`` (``wind app status``
of all applications lists every VM running); ``undeploy_vms_per_s``. A failure in a step is
reported as that step's error, not hidden: the JSON says which step failed and why.

    .venv/bin/python bench/scale.py [--scenario site-10k|site-50k|sites-1000|curve|all]
                                    [--app-size N] [--idle-window S]

``curve`` runs one site at 1,000, 2,500, 5,000 and 10,000 VMs (N against time, memory, CPU).
``--app-size`` splits the VMs into applications of at most N VMs (default: one application).
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wind_actors.cluster import ProcessCluster, free_port  # noqa: E402

TOKEN = "bench-scale-token-0123456789abcdef"
HOST_CPUS = 16
AGENTS_PER_PROCESS = 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cores_over(pids: list[int], window: float) -> float:
    """CPU cores the processes used together over ``window`` seconds from now."""
    before, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
    time.sleep(window)  # a measurement window, not a synchronization
    return (sum(cpu_seconds(p) for p in pids) - before) / (time.monotonic() - t0)


# -- many agents in one process ---------------------------------------------------------------


def serve_agents(configs: list[str]) -> None:
    """A process hosting several agents (each its own node), until stdin closes."""
    from wind_actors.agent import run_agent
    from wind_actors.log import configure_logging

    configure_logging()
    stop = threading.Event()
    readies, workers = [], []
    for config in configs:
        ready = threading.Event()
        worker = threading.Thread(target=run_agent, args=(config,),
                                  kwargs={"ready": ready, "stop": stop}, daemon=True)
        worker.start()
        readies.append(ready)
        workers.append(worker)
    for ready in readies:
        if not ready.wait(120):
            print("failed: an agent did not start within 120 s", flush=True)
            os._exit(1)
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    for worker in workers:
        worker.join(60)
    os._exit(0)


# -- a scenario -------------------------------------------------------------------------------


class Scenario:
    """A controller, ``sites`` sites and ``vms`` VMs in applications of ``app_size``."""

    def __init__(self, name: str, sites: int, vms: int, app_size: int, idle_window: float) -> None:
        self.name, self.sites, self.vms = name, sites, vms
        self.app_size = min(app_size or vms, vms)
        self.idle_window = idle_window
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wind-bench-scale-{name}-"))
        self.cluster = ProcessCluster(self.workdir)
        self.site_names = [f"s{i:04d}" for i in range(sites)]
        self.hosts = max(1, math.ceil(vms / sites / HOST_CPUS * 1.2))
        self.agent_procs: list[subprocess.Popen[bytes]] = []
        self.result: dict[str, Any] = {"scenario": name, "sites": sites, "vms": vms,
                                       "apps": math.ceil(vms / self.app_size),
                                       "hosts_per_site": self.hosts}

    def run(self) -> dict[str, Any]:
        try:
            self._start()
            self._step("deploy", self._deploy)
            self._step("idle", self._idle)
            self._step("sites_up", self._sites_up)
            self._step("status", self._status)
            self._step("undeploy", self._undeploy)
        except Exception as exc:  # noqa: BLE001 - a bench reports what failed and goes on
            self.result.setdefault("failed", f"{type(exc).__name__}: {exc}"[:400])
        finally:
            self._stop()
        return self.result

    def _step(self, name: str, fn: Any) -> None:
        if "failed" in self.result:
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            self.result["failed"] = f"{name}: {type(exc).__name__}: {exc}"[:400]
            print(f"  {self.name}: step {name} failed: {exc}", flush=True)

    # -- setup ----------------------------------------------------------------------------------

    def _start(self) -> None:
        cluster, port = self.cluster, free_port()
        self.port = port
        names = ["controller@hq", "client@bench", *(f"agent@{s}" for s in self.site_names)]
        cluster.ensure_keys(*names)
        cluster.write_config("controller", cluster.node_section("controller@hq", port, controller=True)
                             + f'[controller]\nstore = "wind.db"\n[controller.tenants]\nbench = "{TOKEN}"\n')
        cluster.write_config("client", cluster.node_section("client@bench", port)
                             + f'[client]\ncontroller = "controller@hq"\ntoken = "{TOKEN}"\ntimeout = 900\n')
        configs = []
        for site in self.site_names:
            configs.append(str(cluster.write_config(site, cluster.node_section(f"agent@{site}", port)
                           + f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\ndriver = "sim"\n'
                           f'[agent.driver_options]\nhosts = {self.hosts}\n')))
        self.controller = cluster.start("controller", "controller")
        if self.sites == 1:
            self.agent_procs.append(cluster.start(self.site_names[0], "agent"))
        else:
            for i in range(0, len(configs), AGENTS_PER_PROCESS):
                self.agent_procs.append(self._agent_host(configs[i:i + AGENTS_PER_PROCESS], i))
        self._wait_sites()
        self.rss_before = sum(rss_mb(p.pid) for p in self.agent_procs)
        self.result["controller_rss_mb_before"] = round(rss_mb(self.controller.pid), 1)

    def _agent_host(self, configs: list[str], index: int) -> subprocess.Popen[bytes]:
        log = open(self.workdir / "logs" / f"agents-{index}.log", "ab")
        env = dict(os.environ, WIND_LOG_LEVEL="WARNING")
        proc = subprocess.Popen([sys.executable, __file__, "--serve-agents", *configs],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                cwd=str(self.workdir), env=env)
        log.close()
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith(b"ready"):
            raise RuntimeError(f"agent host {index} did not start: {line!r}")
        return proc

    def _wait_sites(self) -> None:
        deadline = time.monotonic() + 60 + self.sites * 0.2
        while True:
            sites = self._sites()
            up = sum(1 for s in sites if s.get("health") == "up")
            if up == self.sites:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {up} of {self.sites} sites reported up")
            time.sleep(0.5)  # polling the CLI with a deadline

    def _sites(self) -> list[dict[str, Any]]:
        out = self.cluster.wind("sites", "--json", config="client")
        if out.returncode != 0:
            raise RuntimeError(f"wind sites failed: {out.stderr.strip()[-300:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    # -- steps ----------------------------------------------------------------------------------

    def _apps(self) -> list[tuple[str, int]]:
        apps, left, i = [], self.vms, 0
        while left > 0:
            size = min(self.app_size, left)
            apps.append((f"app{i:03d}", size))
            left -= size
            i += 1
        return apps

    def _deploy(self) -> None:
        t0 = time.perf_counter()
        for app, count in self._apps():
            path = self.workdir / f"{app}.yaml"
            path.write_text(f"tenant: bench\napplication: {app}\nplacement: {{policy: spread}}\n"
                            f"components:\n  vm: {{image: img, vcpus: 1, memory_mb: 128, "
                            f"count: {count}, restart: always}}\n")
            out = self.cluster.wind("app", "deploy", str(path), "--json", config="client",
                                    timeout=1800)
            if out.returncode != 0:
                raise RuntimeError(f"deploy of {app} ({count} VMs) failed: "
                                   f"{out.stderr.strip()[-300:]}")
            op = json.loads(out.stdout.strip().splitlines()[-1])["operation"]
            if op["state"] != "done" or op["detail"]["running"] != count:
                raise RuntimeError(f"deploy of {app} ended {op['state']}: {op.get('detail')}")
        seconds = time.perf_counter() - t0
        self.result.update(deploy_s=round(seconds, 2), deploy_vms_per_s=round(self.vms / seconds, 1))
        print(f"  {self.name}: deployed {self.vms} VMs in {seconds:.1f} s", flush=True)

    def _idle(self) -> None:
        time.sleep(3.0)  # let the post-deploy reports and reconciles settle before measuring
        pids = [p.pid for p in self.agent_procs]
        self.result["idle_controller_cores"] = round(cores_over([self.controller.pid],
                                                                self.idle_window), 3)
        self.result["idle_agent_cores"] = round(cores_over(pids, min(self.idle_window, 5.0)), 3)
        rss_after = sum(rss_mb(p) for p in pids)
        self.result["agent_kb_per_vm"] = round((rss_after - self.rss_before) * 1024 / self.vms, 2)
        self.result["agent_threads"] = sum(threads(p) for p in pids)
        self.result["agent_rss_mb"] = round(rss_after, 1)
        self.result["controller_rss_mb"] = round(rss_mb(self.controller.pid), 1)

    def _sites_up(self) -> None:
        sites = self._sites()
        self.result["sites_up"] = sum(1 for s in sites if s.get("health") == "up")

    def _status(self) -> None:
        t0 = time.perf_counter()
        out = self.cluster.wind("app", "status", "--json", config="client", timeout=900)
        self.result["status_s"] = round(time.perf_counter() - t0, 2)
        if out.returncode != 0:
            self.result["status_ok"] = False
            raise RuntimeError(f"wind app status failed: {out.stderr.strip()[-300:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        apps = data["apps"] if isinstance(data, dict) else data
        running = sum(1 for a in apps for vm in a["vms"] if vm["state"] == "running")
        self.result["status_ok"] = running == self.vms
        self.result["status_running"] = running

    def _undeploy(self) -> None:
        t0 = time.perf_counter()
        for app, _count in self._apps():
            out = self.cluster.wind("app", "undeploy", app, "--json", config="client", timeout=1800)
            if out.returncode != 0:
                raise RuntimeError(f"undeploy of {app} failed: {out.stderr.strip()[-300:]}")
        seconds = time.perf_counter() - t0
        self.result.update(undeploy_s=round(seconds, 2),
                           undeploy_vms_per_s=round(self.vms / seconds, 1))

    def _stop(self) -> None:
        for proc in self.agent_procs:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        codes = self.cluster.stop_all()
        for proc in self.agent_procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.result["clean_exit"] = all(c == 0 for c in codes.values())
        if os.environ.get("WIND_BENCH_KEEP") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)


SCENARIOS = {"site-10k": (1, 10_000), "site-50k": (1, 50_000), "sites-1000": (1_000, 10_000)}
CURVE = (1_000, 2_500, 5_000, 10_000)
TARGETS = {"site-10k": {"deploy_vms_per_s": ">= 2000", "agent_kb_per_vm": "<= 10",
                        "idle_controller_cores": "<= 0.1", "sites_up": "all", "status_ok": True},
           "site-50k": {"status_ok": True, "sites_up": "all", "idle_controller_cores": "<= 0.5"},
           "sites-1000": {"status_ok": True, "sites_up": "all", "idle_controller_cores": "<= 0.5"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="all",
                        choices=[*SCENARIOS, "curve", "all"])
    parser.add_argument("--app-size", type=int, default=0,
                        help="most VMs per application (default: one application)")
    parser.add_argument("--sites", type=int, default=1000,
                        help="sites of the many-sites scenario (10 VMs each)")
    parser.add_argument("--idle-window", type=float, default=10.0,
                        help="seconds over which idle CPU is measured")
    args = parser.parse_args()
    os.environ.setdefault("WIND_LOG_LEVEL", "WARNING")
    runs: list[dict[str, Any]] = []
    plan: list[tuple[str, int, int]] = []
    if args.scenario in ("curve", "all"):
        plan += [(f"site-{n}", 1, n) for n in CURVE]
    for name, (sites, vms) in SCENARIOS.items():
        if args.scenario in (name, "all") and not (args.scenario == "all" and name == "site-10k"):
            if name == "sites-1000":
                sites, vms = args.sites, args.sites * 10
            plan.append((name, sites, vms))
    started = time.monotonic()
    load = round(os.getloadavg()[0], 2)
    for name, sites, vms in plan:
        print(f"== {name}: {sites} site(s), {vms} VMs", flush=True)
        result = Scenario(name, sites, vms, args.app_size, args.idle_window).run()
        print("  " + json.dumps(result), flush=True)
        runs.append(result)
    print(json.dumps({"runs": runs, "targets": TARGETS, "app_size": args.app_size or "one app",
                      "load_average_1min": load, "elapsed_s": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-agents":
        serve_agents(sys.argv[2:])
    else:
        sys.exit(main())
