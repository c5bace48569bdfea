"""Benchmark: rescheduling the VMs of lost sites with ``services.replan_lost``.

The pool and applications of bench/scheduler.py (100 sites, 10,000 hosts, spread, anti-affinity and
label rules), filled with APPS applications by one ``Scheduler``; then LOST sites are lost at once
and every application with instances there is replanned (a whole component or none of it). The
baseline, measured in the same run, is the fresh placement rate of those same applications; the
figure is the ratio of moves per second to it. Checks, independently of the scheduler: no move
lands on a lost site, no host is over-committed, every lost instance is either moved or reported.

Prints human lines, then one JSON object on the last line.

Usage: python bench/lost_sites.py [--apps N] [--lost K]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from scheduler import build_pool, descriptor, hard_rules_broken  # noqa: E402  (bench/scheduler.py)

from wind_actors.services import LostApp, Scheduler, replan_lost  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--lost", type=int, default=5, help="sites lost at once")
    args = parser.parse_args()

    pool = build_pool()
    apps = [descriptor(n) for n in range(args.apps)]
    scheduler = Scheduler(pool, seed=1)
    t0 = time.perf_counter()
    placements = [scheduler.place(app) for app in apps]
    fresh_s = time.perf_counter() - t0
    placed = sum(len(p.slots) for p in placements)
    fresh_rate = placed / fresh_s
    filled = scheduler.pool
    print(f"baseline: placed {placed} VMs of {len(apps)} applications in {fresh_s:.2f} s "
          f"({fresh_rate:,.0f} placements/s)")

    by_site: dict[str, int] = {}
    for p in placements:
        for slot in p.slots:
            by_site[slot.site] = by_site.get(slot.site, 0) + 1
    lost = set(sorted(by_site, key=lambda s: (-by_site[s], s))[:args.lost])  # the busiest sites
    lost_apps = [LostApp(app, p.by_instance()) for app, p in zip(apps, placements)
                 if any(s.site in lost for s in p.slots)]
    lost_vms = sum(by_site[s] for s in lost)
    print(f"lost {len(lost)} sites holding {lost_vms} VMs of {len(lost_apps)} applications")

    t0 = time.perf_counter()
    result = replan_lost(filled, lost_apps, lost, seed=1)
    replan_s = time.perf_counter() - t0
    moved = len(result.moves)
    stuck = sum(len(s.instances) for s in result.stuck)
    on_lost = sum(1 for m in result.moves if m.slot.site in lost)
    over = sum(1 for s in result.pool.sites.values() if s.name not in lost
               for h in s.hosts if not h.used.fits_in(h.total))
    accounted = moved + stuck == lost_vms
    broken = sum(hard_rules_broken(filled, result.slots(la).values()) for la in lost_apps)
    rate = moved / replan_s if replan_s > 0 else 0.0
    print(f"replanned in {replan_s:.3f} s: {moved} moved ({rate:,.0f}/s), {stuck} left lost "
          f"({len(result.stuck)} components); moves onto lost sites: {on_lost}; over-committed hosts: {over}; "
          f"every lost VM accounted for: {accounted}; hard rules broken: {broken}")
    print(f"ratio of move rate to fresh placement rate: {rate / fresh_rate:.2f}")
    print(json.dumps({"lost_sites": len(lost), "lost_vms": lost_vms, "apps_affected": len(lost_apps),
                      "moved": moved, "left_lost": stuck, "replan_s": round(replan_s, 4),
                      "moves_per_s": round(rate, 1), "fresh_placements_per_s": round(fresh_rate, 1),
                      "moves_vs_fresh_ratio": round(rate / fresh_rate, 3), "moves_onto_lost_sites": on_lost,
                      "overcommitted_hosts": over, "all_accounted": accounted,
                      "hard_rules_broken": broken}))


if __name__ == "__main__":
    main()
