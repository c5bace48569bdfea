"""Hypothesis: rescheduling the VMs of lost sites (``services.replan_lost``).

A stateful model deploys applications into a small pool, loses and recovers sites, and replans.
After every replan: no VM lands on a down site, only VMs of lost sites move, a component moves
whole or not at all (and is then reported stuck), every instance exists exactly once, no host is
over-committed, and the complete assignment breaks no hard rule. The rule oracle is written from
the descriptor semantics, independently of the scheduler's code.
"""

from __future__ import annotations


from hypothesis import event, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from placement_oracle import relation_violations, where_ok

from wind_actors.controller._lost import stale_copies
from wind_actors.services import (
    ALIVE_STATES, DesiredVM, Host, LostApp, ObservedVM, PlacementFailed, Pool, SiteReport, parse_descriptor,
    reconcile, replan_lost, schedule,
)

SITES = ("a", "b", "c", "d")
COMPS = ("x", "y")


@st.composite
def base_pools(draw) -> Pool:
    reports = []
    for i, name in enumerate(SITES):
        hosts = tuple(Host(f"h{j}", draw(st.integers(1, 4)), draw(st.sampled_from([1024, 2048])), 20)
                      for j in range(draw(st.integers(1, 2))))
        rtt = {other: draw(st.sampled_from([5.0, 40.0])) for other in SITES[i + 1:] if draw(st.booleans())}
        reports.append(SiteReport(name, "sim", hosts, region=draw(st.sampled_from(["r0", "r1"])),
                                  labels={"ssd": draw(st.sampled_from(["yes", "no"]))}, rtt_ms=rtt))
    return Pool.from_reports(reports)


@st.composite
def apps(draw, name: str):
    comps = {}
    for comp in COMPS[:draw(st.integers(1, 2))]:
        place: dict = {}
        if draw(st.integers(0, 3)) == 0:
            place["where"] = {"labels": {"ssd": draw(st.sampled_from(["yes", "no"]))}}
        elif draw(st.integers(0, 3)) == 0:
            place["where"] = {"sites": draw(st.lists(st.sampled_from(SITES), min_size=1, max_size=3,
                                                     unique=True))}
        for key in ("anti_affinity", "affinity"):
            if draw(st.integers(0, 2)) == 0:
                place[key] = [{"component": draw(st.sampled_from(COMPS[:len(comps) + 1])),
                               "scope": draw(st.sampled_from(["host", "site", "region"]))}]
        if draw(st.integers(0, 4)) == 0:
            place["max_latency_ms"] = [{"component": draw(st.sampled_from(COMPS[:len(comps) + 1])),
                                        "ms": 10}]
        if draw(st.booleans()):
            place["spread"] = {"over": "site"}
        comps[comp] = {"image": "i", "count": draw(st.integers(1, 3)), "vcpus": draw(st.integers(1, 2)),
                       "memory_mb": draw(st.sampled_from([256, 512])), "placement": place}
    # A relation may name a component that was not drawn; the descriptor would be invalid.
    for spec in comps.values():
        for key in ("anti_affinity", "affinity", "max_latency_ms"):
            rels = [r for r in spec["placement"].get(key, ()) if r["component"] in comps]
            if rels:
                spec["placement"][key] = rels
            else:
                spec["placement"].pop(key, None)
    return parse_descriptor({"tenant": "t", "application": name, "components": comps,
                             "placement": {"policy": draw(st.sampled_from(["binpack", "spread"]))}})


# -- the oracle ------------------------------------------------------------------------------------

def rule_violations(pool: Pool, app, assignment: dict, must_be_up: set) -> list[str]:
    """Hard rules the complete ``assignment`` (instance -> (site, host)) breaks; the ``up`` rule is
    checked for the instances in ``must_be_up`` only (the others may sit on a lost site)."""
    out = []
    comps = {c.name: c for c in app.components}
    for iid, (s, _) in assignment.items():
        c = comps[iid.rsplit("-", 1)[0]]
        site = pool.sites[s]
        if iid in must_be_up and site.health != "up":
            out.append(f"{iid}: on {s}, which is {site.health}")
        if not where_ok(site, c.placement.where):
            out.append(f"{iid}: where")
    return out + relation_violations(pool, app, assignment)


# -- the model -------------------------------------------------------------------------------------

class LostSites(RuleBasedStateMachine):
    """Deploy, lose sites, recover them, and replan, checking every replan's outcome."""

    @initialize(pool=base_pools())
    def start(self, pool: Pool) -> None:
        self.base = pool
        self.down: set[str] = set()
        self.placed: dict[str, tuple] = {}  # app name -> (descriptor, {instance: Slot})
        self.replans = 0

    def pool(self) -> Pool:
        pool = self.base
        for name in self.down:
            pool = pool.with_site_health(name, "down")
        return pool.with_usage([s for _, slots in self.placed.values() for s in slots.values()])

    @rule(data=st.data())
    def deploy(self, data) -> None:
        name = f"app{len(self.placed)}"
        app = data.draw(apps(name))
        try:
            placement = schedule(self.pool(), app, seed=len(self.placed))
        except PlacementFailed:
            return
        self.placed[name] = (app, placement.by_instance())

    @precondition(lambda self: len(self.down) < len(SITES) - 1)
    @rule(site=st.sampled_from(SITES))
    def lose(self, site: str) -> None:
        self.down.add(site)

    @precondition(lambda self: self.down)
    @rule(data=st.data())
    def recover(self, data) -> None:
        self.down.discard(data.draw(st.sampled_from(sorted(self.down))))

    @precondition(lambda self: self.placed)
    @rule(seed=st.integers(0, 3))
    def replan(self, seed: int) -> None:
        before = self.pool()
        lost = set(self.down)
        lost_apps = [LostApp(app, slots) for app, slots in self.placed.values()]
        result = replan_lost(before, lost_apps, lost, seed=seed, search_budget=20_000)
        self.replans += 1
        moved = {(m.app, m.instance): m for m in result.moves}
        assert len(moved) == len(result.moves), "an instance was moved twice in one replan"
        for move in result.moves:
            old = self.placed[move.app][1][move.instance]
            assert old.site in lost and move.from_site == old.site, f"{move} was not on a lost site"
            assert move.slot.site not in self.down, f"{move} lands on a down site"
        stuck = {(s.app, s.component): s for s in result.stuck}
        for la in lost_apps:
            app = la.app
            for comp in app.components:
                on_lost = {i for i in comp.instance_ids() if la.slots[i].site in lost}
                went = {i for i in comp.instance_ids() if (app.name, i) in moved}
                assert went in (set(), on_lost), f"{app.name}/{comp.name}: moved {went} of {on_lost}"
                if on_lost and not went:
                    s = stuck[(app.name, comp.name)]
                    assert set(s.instances) == on_lost and s.reason and s.explanation is not None
                    event("a component stayed lost")
                elif on_lost:
                    event("a component moved")
            new = result.slots(la)
            assert sorted(new) == sorted(iid for iid, _ in app.instances()), "an instance was lost or doubled"
            assignment = {i: (s.site, s.host) for i, s in new.items()}
            must_be_up = {i for i in new if (app.name, i) in moved}
            assert rule_violations(before, app, assignment, must_be_up) == []
            self.placed[app.name] = (app, new)
        after = self.pool()
        for name, site in after.sites.items():
            for host in site.hosts:
                assert host.used.fits_in(host.total), f"{name}/{host.name} over-committed"
                if name not in lost:
                    assert result.pool.sites[name].host(host.name).used == host.used

    @invariant()
    def placements_never_break_a_hard_rule(self) -> None:
        pool = self.pool()
        for app, slots in self.placed.values():
            assignment = {i: (s.site, s.host) for i, s in slots.items()}
            assert rule_violations(pool, app, assignment, set()) == []


LostSites.TestCase.settings = settings(max_examples=100, stateful_step_count=15, deadline=None)
TestLostSites = LostSites.TestCase


# -- examples a reader can follow ------------------------------------------------------------------

def _pool(*names: str, cpus: int = 4) -> Pool:
    return Pool.from_reports(SiteReport(n, "sim", (Host("h0", cpus, 4096, 20),), labels={"site": n})
                             for n in names)


def _placed(pool: Pool, doc: dict):
    app = parse_descriptor(doc)
    return app, schedule(pool, app).by_instance()


def test_moves_the_instance_of_a_lost_site_to_the_one_site_its_rules_leave() -> None:
    pool = _pool("a", "b", "c", "d")
    app, slots = _placed(pool, {"tenant": "t", "application": "w", "components": {
        "web": {"image": "i", "count": 3, "placement": {"anti_affinity": ["web"]}}}})
    lost = slots["web-0"].site
    free = (set("abcd") - {s.site for s in slots.values()}).pop()
    result = replan_lost(pool.with_usage(slots.values()), [LostApp(app, slots)], {lost})
    assert [(m.instance, m.from_site, m.slot.site) for m in result.moves] == [("web-0", lost, free)]
    assert result.stuck == ()
    assert result.slots(LostApp(app, slots)) == {**slots, "web-0": result.moves[0].slot}


def test_a_component_pinned_to_the_lost_site_stays_lost_with_the_schedulers_reason() -> None:
    pool = _pool("a", "b")
    app, slots = _placed(pool, {"tenant": "t", "application": "db", "components": {
        "db": {"image": "i", "count": 2, "placement": {"where": {"labels": {"site": "a"}}}}}})
    result = replan_lost(pool, [LostApp(app, slots)], {"a"})
    assert result.moves == ()
    (stuck,) = result.stuck
    assert stuck.instances == ("db-0", "db-1") and stuck.sites == ("a",)
    assert "labels site=a" in stuck.reason and "health (down)" in stuck.reason
    assert result.slots(LostApp(app, slots)) == slots


def test_moves_all_of_a_components_lost_instances_or_none() -> None:
    pool = _pool("a", "b", cpus=3)
    app, slots = _placed(pool, {"tenant": "t", "application": "w", "placement": {"policy": "binpack"},
                                "components": {"web": {"image": "i", "count": 2, "vcpus": 2,
                                                       "placement": {"where": {"sites": ["a", "b"]}}}}})
    assert {s.site for s in slots.values()} == {"a", "b"}
    lost = next(s.site for s in slots.values())
    other = ({"a", "b"} - {lost}).pop()
    # the surviving site has 1 free vCPU: the lost 2-vCPU instance cannot move
    result = replan_lost(pool.with_usage(slots.values()), [LostApp(app, slots)], {lost})
    assert result.moves == () and result.stuck[0].component == "web"
    assert other not in result.stuck[0].sites


# -- stale copies: a site that comes back never keeps a moved VM ---------------------------------

@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(SITES), st.sets(st.sampled_from(SITES), max_size=2)),
                min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 3), st.sampled_from(SITES),
                          st.sampled_from(["running", "paused", "shutoff", "crashed", "defined"])),
                max_size=8))
def test_a_copy_left_on_a_site_its_vm_moved_from_is_stopped_and_never_adopted(vms, copies) -> None:
    placed = {f"vm{i}": site for i, (site, _) in enumerate(vms)}
    moved = {f"vm{i}": frozenset(gone - {site}) for i, (site, gone) in enumerate(vms)}
    observed = [ObservedVM(f"vm{i}", site, state) for i, site, state in copies if i < len(vms)]
    stale, rest = stale_copies(observed, placed, moved)
    assert sorted(stale + rest, key=repr) == sorted(observed, key=repr)
    assert all(vm.site in moved[vm.name] for vm in stale)
    result = reconcile([DesiredVM(n, s) for n, s in placed.items()], rest, sites_up=SITES)
    assert not [a for a in result.adopt if a.site in moved[a.name]], "a stale copy was adopted"
    for name, site in placed.items():
        if not any(vm.name == name and vm.state in ALIVE_STATES for vm in rest):
            # only stale copies run (if any): the VM is started where it is placed now
            assert [(a.kind, a.site) for a in result if a.name == name and a.kind != "stop"] == [("start", site)]
    for vm in observed:
        if vm.site in moved[vm.name] and vm.site != placed[vm.name]:
            assert vm in stale  # the application actor removes it
