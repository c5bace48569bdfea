"""Benchmark: placements per second for the Wind scheduler (issue 5).

100,000 VM requests (1,000 applications of 100 instances) placed across 10,000 hosts in 100 sites
(10 regions), in one process, with spread (over regions and over sites), anti-affinity (host and
site scope) and label constraints; policies alternate binpack and spread. Reservations accumulate
in one ``Scheduler``, as in a controller. Prints human lines, then one JSON object on the last line:
placements_per_s (target >= 5,000), peak_rss_mb, and the setup figures.

Usage: python bench/scheduler.py [--apps N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wind_actors.services import Host, Pool, Scheduler, SiteReport, parse_descriptor  # noqa: E402

SITES, REGIONS, HOSTS_PER_SITE = 100, 10, 100


def build_pool() -> Pool:
    reports = []
    for i in range(SITES):
        labels = {"storage": "ssd" if i % 2 == 0 else "hdd", "tier": "edge" if i % 4 else "core"}
        hosts = tuple(Host(f"h{j:03d}", 64, 262_144, 4_000) for j in range(HOSTS_PER_SITE))
        rtt = {f"s{k:03d}": 5.0 + abs(i - k) for k in range(SITES) if k != i}
        reports.append(SiteReport(f"s{i:03d}", "sim", hosts, region=f"r{i % REGIONS}", labels=labels, rtt_ms=rtt))
    return Pool.from_reports(reports)


def descriptor(n: int):
    policy = "binpack" if n % 2 else "spread"
    return parse_descriptor(f"""
tenant: t{n % 50}
application: app{n}
placement: {{policy: {policy}}}
networks: {{net: {{cidr: 10.0.0.0/16}}}}
components:
  web:
    image: web
    vcpus: 2
    memory_mb: 4096
    disk_gb: 20
    count: 60
    networks: [net]
    placement:
      anti_affinity: [{{component: web, scope: host}}]
      spread: {{over: region}}
  cache:
    image: cache
    vcpus: 1
    memory_mb: 2048
    count: 30
    placement:
      where: {{labels: {{tier: edge}}}}
      spread: {{over: site}}
  db:
    image: db
    vcpus: 4
    memory_mb: 16384
    disk_gb: 100
    count: 10
    placement:
      where: {{labels: {{storage: ssd}}}}
      anti_affinity: [db]
""")


def hard_rules_broken(pool: Pool, slots) -> int:
    """Count the hard rules these slots break, independently of the scheduler (keeps the figure
    honest): host anti-affinity of web, site anti-affinity and the ssd label of db, the edge
    label of cache."""
    by: dict[str, list] = {"web": [], "cache": [], "db": []}
    for slot in slots:
        by[slot.component].append(slot)
    broken = len(by["web"]) - len({(s.site, s.host) for s in by["web"]})      # host anti-affinity
    broken += len(by["db"]) - len({s.site for s in by["db"]})                   # site anti-affinity
    broken += sum(1 for s in by["db"] if pool.sites[s.site].labels["storage"] != "ssd")
    broken += sum(1 for s in by["cache"] if pool.sites[s.site].labels["tier"] != "edge")
    return broken


def check(pool: Pool, placement) -> int:
    """Count broken rules in one placement: the hard ones, and web spread evenly over regions."""
    web = [s for s in placement.slots if s.component == "web"]
    regions = Counter(pool.sites[s.site].region for s in web)
    uneven = sum(1 for n in regions.values() if n != len(web) // REGIONS)
    return hard_rules_broken(pool, placement.slots) + uneven


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="profile with pyinstrument")
    args = parser.parse_args()

    t0 = time.perf_counter()
    pool = build_pool()
    apps = [descriptor(n) for n in range(args.apps)]
    scheduler = Scheduler(pool, seed=1)
    setup_s = time.perf_counter() - t0
    vms = sum(a.vm_count for a in apps)
    print(f"pool: {SITES} sites, {SITES * HOSTS_PER_SITE} hosts, {REGIONS} regions; "
          f"{len(apps)} applications, {vms} VMs (setup {setup_s:.2f} s)")

    profiler = None
    if args.profile:
        from pyinstrument import Profiler
        profiler = Profiler()
        profiler.start()
    t0 = time.perf_counter()
    placements = [scheduler.place(app) for app in apps]
    elapsed = time.perf_counter() - t0
    placed = sum(len(p.slots) for p in placements)
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))

    final = scheduler.pool
    used = sum(s.used.cpus for s in final.sites.values())
    total = sum(s.total.cpus for s in final.sites.values())
    over = [s.name for s in final.sites.values() for h in s.hosts if not h.used.fits_in(h.total)]
    broken = sum(check(pool, p) for p in placements)
    rate = placed / elapsed
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"placed {placed} VMs in {elapsed:.2f} s: {rate:,.0f} placements/s (target >= 5,000)")
    print(f"pool vCPUs used {used}/{total}; over-committed hosts: {len(over)}; rules broken: {broken}; "
          f"peak RSS {peak_rss_mb:.0f} MB")
    print(json.dumps({"placements_per_s": round(rate, 1), "placed": placed, "elapsed_s": round(elapsed, 3),
                      "sites": SITES, "hosts": SITES * HOSTS_PER_SITE, "setup_s": round(setup_s, 3),
                      "overcommitted_hosts": len(over), "rules_broken": broken, "peak_rss_mb": round(peak_rss_mb, 1),
                      "target_placements_per_s": 5000}))


if __name__ == "__main__":
    main()
