"""Overlay figures: plan_ms at scale, apply_ms and converge_ms on three real namespace sites (root).

- plan_ms: plan() for 100 sites, 1,000 tenant networks, 100,000 NICs (target < 2,000 ms);
  baseline: grouping the same NICs by (network, site) in a dict, the least any planner does.
- replan_ms / diff_ms: the same with the previous allocations, and diff_plans after one NIC is added.
- replan_one_ms / diff_one_ms: what the controller does for that change: overlay.replan of that one
  network, and diff_plans of its segments only.
- apply_ms: realizing a plan (20 networks, 3 sites, 180 NICs) into three fresh namespaces.
- converge_ms: from a NIC added (re-plan + diff + apply at each site) until its FDB entry is in
  the kernel at every other member site, polled with pyroute2 (target < 1,000 ms);
  baseline: one netlink FDB dump in a site namespace.

Prints human lines, then one JSON object on the last line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time

import structlog

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from overlay import FdbEntry, Nic, Realizer, Site, TenantNetwork, diff_plans, plan  # noqa: E402
from overlay import replan as replan_networks  # noqa: E402
from overlay.testing import NamespaceLab  # noqa: E402


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def mac(i: int) -> str:
    return "52:54:%02x:%02x:%02x:%02x" % (i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255)


def scale_input(n_sites=100, n_networks=1000, n_nics=100_000, seed=7):
    rng = random.Random(seed)
    sites = [Site(f"site-{i}", f"10.{i // 250}.{i % 250}.1") for i in range(n_sites)]
    networks = [TenantNetwork(f"tenant-{i % 200}", f"net-{i}", "10.0.0.0/16") for i in range(n_networks)]
    nics = []
    for i in range(n_nics):
        net = networks[i % n_networks]
        nics.append(Nic(f"vm-{i}", sites[rng.randrange(n_sites)].name, net.tenant, net.name, mac(i)))
    return sites, networks, nics


def best_of(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def bench_plan() -> dict:
    sites, networks, nics = scale_input()
    base, _, _ = best_of(3, lambda: _group(nics))
    best, median, p = best_of(3, lambda: plan(sites, networks, nics))
    replan, _, p2 = best_of(3, lambda: plan(sites, networks, nics, previous=p.allocations))
    extra = Nic("vm-new", "site-0", networks[0].tenant, networks[0].name, mac(10**8))
    p3 = plan(sites, networks, [*nics, extra], previous=p2.allocations)
    diff_t, _, changes = best_of(3, lambda: diff_plans(p2, p3))
    # What the controller does instead: re-plan just that network, diff just its segments.
    key = (extra.tenant, extra.network)
    members = [n for n in nics if (n.tenant, n.network) == key] + [extra]
    one, _, p4 = best_of(3, lambda: replan_networks(p2, sites, [networks[0]], members, [key]))
    one_diff, _, _ = best_of(3, lambda: diff_plans(p2, p4, [key]))
    assert p4 == p3, "an incremental re-plan must equal the full one"
    segments = sum(len(s.segments) for s in p.sites.values())
    print(f"plan: {len(sites)} sites, {len(networks)} networks, {len(nics)} NICs -> {segments} segments")
    print(f"  plan_ms best {ms(best)} (median {ms(median)}), replan_ms {ms(replan)}, "
          f"baseline group_ms {ms(base)} -> ratio {best / base:.1f}x")
    print(f"  diff_ms after one NIC added {ms(diff_t)}; sites touched {len(changes)}")
    print(f"  incremental: replan_one_ms {ms(one)} (that network only), diff_one_ms {ms(one_diff)}")
    return {"plan_ms": ms(best), "plan_median_ms": ms(median), "replan_ms": ms(replan),
            "plan_baseline_group_ms": ms(base), "plan_vs_baseline": round(best / base, 1),
            "diff_ms": ms(diff_t), "diff_sites_touched": len(changes), "segments": segments,
            "replan_one_ms": ms(one), "diff_one_ms": ms(one_diff)}


def _group(nics):
    out: dict = {}
    for nic in nics:
        out.setdefault((nic.tenant, nic.network), {}).setdefault(nic.site, []).append(nic.mac)
    return out


def bench_namespaces() -> dict:
    with NamespaceLab() as lab:
        sites = [lab.add_site(name) for name in ("a", "b", "c")]
        realizers = {s.name: Realizer(lab.site_netns(s.name)) for s in sites}
        try:
            return _namespace_figures(lab, sites, realizers)
        finally:
            for r in realizers.values():
                r.close()


def _namespace_figures(lab, sites, realizers) -> dict:
    networks = [TenantNetwork(f"tenant-{i % 4}", f"net-{i}", "10.8.0.0/24") for i in range(20)]
    nics = [Nic(f"vm-{i}", sites[i % 3].name, networks[i % 20].tenant, networks[i % 20].name, mac(i))
            for i in range(180)]
    p = plan(sites, networks, nics)
    t0 = time.perf_counter()
    for s in sites:
        realizers[s.name].realize(p.sites[s.name])
    apply_t = time.perf_counter() - t0
    fdb_entries = sum(len(seg.fdb) for st in p.sites.values() for seg in st.segments.values())
    t0 = time.perf_counter()
    for s in sites:
        assert realizers[s.name].realize(p.sites[s.name]).noop
    rerealize_t = time.perf_counter() - t0
    print(f"apply: 3 namespace sites, {len(networks)} networks, {fdb_entries} FDB entries: "
          f"apply_ms {ms(apply_t)}, re-realize (no-op) {ms(rerealize_t)} ms")

    base, _, _ = best_of(5, lambda: realizers["b"].fdb(p.networks[networks[0].key].vni))
    converge = []
    for i in range(20):
        net = networks[i % len(networks)]
        new_nic = Nic(f"vm-x{i}", "a", net.tenant, net.name, mac(5000 + i))
        nics.append(new_nic)
        t0 = time.perf_counter()
        new = plan(sites, networks, nics, previous=p.allocations)
        for site, change in diff_plans(p, new).items():
            realizers[site].apply(change)
        vni = new.networks[net.key].vni
        want = FdbEntry(new_nic.mac, sites[0].underlay_ip)
        others = [s.name for s in sites[1:] if new.sites[s.name].segment_for(net.tenant, net.name)]
        deadline = t0 + 5
        while not all(want in realizers[o].fdb(vni) for o in others):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"FDB entry {want} not present at {others} after 5 s")
        converge.append(time.perf_counter() - t0)
        p = new
    med = statistics.median(converge)
    print(f"converge: NIC added -> FDB entry at every other site: median {ms(med)} ms, "
          f"max {ms(max(converge))} ms (20 runs); baseline one FDB read {ms(base)} ms -> ratio {med / base:.1f}x")
    return {"apply_ms": ms(apply_t), "rerealize_noop_ms": ms(rerealize_t), "apply_fdb_entries": fdb_entries,
            "converge_ms": ms(med), "converge_max_ms": ms(max(converge)),
            "converge_baseline_fdb_read_ms": ms(base), "converge_vs_baseline": round(med / base, 1)}


def main() -> None:
    # Per-change info logs would interleave with the figures (and cost time); keep warnings.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures = bench_plan()
    if os.geteuid() == 0:
        figures.update(bench_namespaces())
    else:
        print("not root: apply_ms and converge_ms need network namespaces; skipped")
    figures["targets_met"] = figures["plan_ms"] < 2000 and figures.get("converge_ms", 0) < 1000
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
