"""Hypothesis: the scheduler never over-commits, always honours hard rules, and finds a placement
whenever one exists (checked against brute force over every assignment on small pools).

The oracle below is written from the descriptor semantics, independently of the scheduler's code.
"""

from __future__ import annotations

import itertools

from hypothesis import event, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from placement_oracle import relation_violations, rtt_ok, where_ok

from wind_actors.services import (
    Host, PlacementFailed, Pool, Resources, Scheduler, SiteReport, parse_descriptor, schedule,
)

SITE_NAMES = ("a", "b", "c")
COMP_NAMES = ("x", "y", "z")
SCOPES = ("host", "host", "site", "region")  # host rules are the easiest to get wrong


@st.composite
def pools(draw) -> Pool:
    n = draw(st.integers(1, 3))
    reports = []
    for i in range(n):
        hosts = tuple(Host(f"h{j}", draw(st.integers(1, 6)), draw(st.sampled_from([1024, 2048, 4096])),
                           draw(st.sampled_from([5, 20])),
                           used_cpus=draw(st.integers(0, 1)))
                      for j in range(draw(st.integers(1, 2))))
        hosts = tuple(h if h.used_cpus <= h.cpus else Host(h.name, h.cpus, h.memory_mb, h.disk_gb) for h in hosts)
        rtt = {SITE_NAMES[k]: draw(st.sampled_from([5.0, 20.0, 60.0])) for k in range(n)
               if k != i and draw(st.booleans())}
        reports.append(SiteReport(SITE_NAMES[i], draw(st.sampled_from(["sim", "libvirt", "libcloud"])), hosts,
                                  region=draw(st.sampled_from(["r0", "r1"])),
                                  labels={"ssd": draw(st.sampled_from(["yes", "no"]))},
                                  health=draw(st.sampled_from(["up"] * 5 + ["down"])), rtt_ms=rtt))
    return Pool.from_reports(reports)


@st.composite
def apps(draw):
    ncomp = draw(st.integers(1, 3))
    names = COMP_NAMES[:ncomp]
    budget = 4  # instances in total, so brute force stays small
    comps = {}
    for name in names:
        count = draw(st.integers(0, min(3, budget)))
        budget -= count
        place: dict = {}
        where: dict = {}
        if draw(st.integers(0, 2)) == 0:
            where["labels"] = {"ssd": draw(st.sampled_from(["yes", "no"]))}
        if draw(st.integers(0, 5)) == 0:
            where["regions"] = [draw(st.sampled_from(["r0", "r1"]))]
        if draw(st.integers(0, 5)) == 0:
            where["kinds"] = [draw(st.sampled_from(["hypervisor", "cloud"]))]
        if draw(st.integers(0, 5)) == 0:
            where["sites"] = draw(st.lists(st.sampled_from(SITE_NAMES), min_size=1, max_size=2, unique=True))
        if where:
            place["where"] = where
        for key in ("anti_affinity", "affinity"):
            rels = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(SCOPES)), max_size=2)
                        if draw(st.booleans()) else st.just([]))
            if rels:
                place[key] = [{"component": c, "scope": s} for c, s in rels]
        bounds = []
        if draw(st.integers(0, 3)) == 0:
            bounds.append({"component": draw(st.sampled_from(names)), "ms": draw(st.sampled_from([10, 30]))})
        if draw(st.integers(0, 3)) == 0:
            bounds.append({"site": draw(st.sampled_from(SITE_NAMES)), "ms": draw(st.sampled_from([10, 30]))})
        if bounds:
            place["max_latency_ms"] = bounds
        if draw(st.booleans()):
            place["spread"] = {"over": draw(st.sampled_from(["site", "region"]))}
        comps[name] = {"image": "i", "count": count, "vcpus": draw(st.integers(1, 2)),
                       "memory_mb": draw(st.sampled_from([256, 512, 1024])),
                       "disk_gb": draw(st.sampled_from([0, 5])), "placement": place}
    doc = {"tenant": "t", "application": "app", "components": comps,
           "placement": {"policy": draw(st.sampled_from(["binpack", "spread"]))}}
    return parse_descriptor(doc)


# -- the oracle ----------------------------------------------------------------------------------

def violations(pool, app, assignment):
    """Every hard rule the complete ``assignment`` (instance -> (site, host)) breaks."""
    out = []
    comps = {c.name: c for c in app.components}
    use: dict = {}
    for iid, (s, h) in assignment.items():
        c = comps[iid.rsplit("-", 1)[0]]
        use[(s, h)] = use.get((s, h), Resources()) + Resources(c.vcpus, c.memory_mb, c.disk_gb)
        site = pool.sites[s]
        if site.health != "up" or not where_ok(site, app.where) or not where_ok(site, c.placement.where):
            out.append(f"{iid}: static rules")
        for b in c.placement.max_latency:
            if b.site is not None and not (b.site in pool.sites and rtt_ok(pool, s, b.site, b.ms)):
                out.append(f"{iid}: latency to site {b.site}")
    for (s, h), res in use.items():
        if not res.fits_in(pool.sites[s].host(h).free):
            out.append(f"{s}/{h} over-committed")
    return out + relation_violations(pool, app, assignment)


def exists(pool, app) -> bool:
    instances = [iid for iid, _ in app.instances()]
    slots = [(s.name, h.name) for s in pool.sites.values() for h in s.hosts]
    return any(not violations(pool, app, dict(zip(instances, combo)))
               for combo in itertools.product(slots, repeat=len(instances)))


# -- properties ----------------------------------------------------------------------------------

@settings(max_examples=300)
@given(pools(), apps(), st.integers(0, 3))
def test_a_placement_is_found_exactly_when_one_exists_and_it_breaks_no_hard_rule(pool, app, seed):
    possible = exists(pool, app)
    event("a placement exists" if possible else "no placement exists")
    try:
        placement = schedule(pool, app, seed=seed, search_budget=10**7)
    except PlacementFailed as exc:
        assert not possible, f"a placement exists but the scheduler said:\n{exc}"
        return
    assignment = {s.instance: (s.site, s.host) for s in placement.slots}
    assert sorted(assignment) == sorted(iid for iid, _ in app.instances())
    assert violations(pool, app, assignment) == []
    assert possible


@settings(max_examples=50)
@given(pools(), apps(), st.integers(0, 3))
def test_placement_is_deterministic_given_the_seed(pool, app, seed):
    def attempt():
        try:
            return schedule(pool, app, seed=seed)
        except PlacementFailed as exc:
            return str(exc)
    assert attempt() == attempt()


class SchedulerModel(RuleBasedStateMachine):
    """Place and release applications in one Scheduler: usage always adds up, never over-commits."""

    def __init__(self) -> None:
        super().__init__()
        self.base: Pool | None = None
        self.live: dict[int, tuple] = {}
        self.next_id = 0

    @precondition(lambda self: self.base is None)
    @rule(pool=pools())
    def start(self, pool):
        self.base = pool
        self.sched = Scheduler(pool, seed=1)

    @precondition(lambda self: self.base is not None)
    @rule(app=apps())
    def place(self, app):
        before = self.sched.pool
        try:
            placement = self.sched.place(app)
        except PlacementFailed:
            assert self.sched.pool == before, "a failed placement changed the pool"
            return
        self.live[self.next_id] = placement.slots
        self.next_id += 1

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def release(self, data):
        key = data.draw(st.sampled_from(sorted(self.live)))
        self.sched.release(self.live.pop(key))

    @invariant()
    def usage_adds_up_and_no_host_is_over_committed(self):
        if self.base is None:
            return
        expected = self.base.with_usage([s for slots in self.live.values() for s in slots])
        current = self.sched.pool
        for name, site in current.sites.items():
            assert site.used == expected.sites[name].used
            for host in site.hosts:
                assert host.used.fits_in(host.total), f"{name}/{host.name} over-committed"
                assert host.used == expected.sites[name].host(host.name).used


SchedulerModel.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
TestSchedulerModel = SchedulerModel.TestCase
