"""Re-planning only the dirty networks equals a full re-plan of the same inputs, under Hypothesis.

A controller's life of random changes (sites join, leave and change their underlay address;
networks come, go and change their CIDR; NICs come, go and move between sites). After each
change, :func:`overlay.replan` with the networks the change touched (plus some not touched at
all, which must be harmless) must give exactly what :func:`overlay.plan` gives for the whole
input with the previous allocations: the same site states, network plans, VNIs and addresses,
or the same error. Sites no dirty network touches keep their very ``SiteState`` object, and
``diff_plans`` restricted to the dirty networks gives the same diffs as a whole one.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from overlay import Nic, OverlayError, Plan, PlanError, Site, TenantNetwork, diff_plans, plan, replan

CIDRS = ["10.0.0.0/29", "10.0.1.0/28", "fd00::/124", "10.0.2.0/30"]  # a /30 holds 2: exhaustion too
TENANTS = ["t0", "t1"]


def _unordered(changes: dict) -> dict:
    """Diffs compared regardless of the order of their segments (the realizer's does not matter)."""
    return {site: (d.underlay_ip, frozenset(d.add), frozenset(d.update), frozenset(d.remove))
            for site, d in changes.items()}


class IncrementalLife(RuleBasedStateMachine):
    """Full inputs, the incrementally kept plan, and the networks each change dirtied."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[str, Site] = {}
        self.networks: dict[tuple[str, str], TenantNetwork] = {}
        self.nics: dict[tuple[str, str, str], Nic] = {}  # (tenant, network, mac)
        self.plan: Plan = plan([], [], [])
        self.counter = 0
        self.plans = 0

    # -- checking --------------------------------------------------------------------------------

    def _nets_at(self, site: str) -> set[tuple[str, str]]:
        return {k[:2] for k, n in self.nics.items() if n.site == site}

    def _check(self, dirty: set[tuple[str, str]], extra: set[tuple[str, str]] = frozenset()) -> None:
        marked = dirty | extra
        sites = list(self.sites.values())
        try:
            full = plan(sites, self.networks.values(), self.nics.values(), previous=self.plan.allocations)
        except OverlayError as exc:
            full = exc
        try:
            part = replan(self.plan, sites, [n for k, n in self.networks.items() if k in marked],
                          [n for k, n in self.nics.items() if k[:2] in marked], marked)
        except OverlayError as exc:
            part = exc
        if isinstance(full, OverlayError):
            assert type(part) is type(full) and str(part) == str(full), (part, full)
            self._undo()
            return
        assert not isinstance(part, OverlayError), part
        assert part.networks == full.networks
        assert part.allocations == full.allocations
        assert part.sites == full.sites
        touched = set()
        for key in marked:
            for p in (self.plan, part):
                if key in p.networks:
                    touched |= set(p.networks[key].members)
        for name, state in part.sites.items():
            old = self.plan.sites.get(name)
            if name not in touched and old is not None and old.underlay_ip == state.underlay_ip:
                assert state is old  # untouched sites are skipped by identity
        assert _unordered(diff_plans(self.plan, part, marked)) == _unordered(diff_plans(self.plan, full))
        self.plan = part
        self.plans += 1
        self._snapshot()

    def _snapshot(self) -> None:
        self._saved = (dict(self.sites), dict(self.networks), dict(self.nics))

    def _undo(self) -> None:
        """The change could not be planned (an exhausted CIDR): the controller keeps its plan."""
        self.sites, self.networks, self.nics = (dict(x) for x in self._saved)

    def _extra(self, data) -> set[tuple[str, str]]:
        pool = sorted(set(self.networks) | {("t9", "never")} | set(self.plan.networks))
        return set(data.draw(st.lists(st.sampled_from(pool), max_size=2))) if pool else set()

    # -- sites -----------------------------------------------------------------------------------

    @rule(data=st.data())
    def add_site(self, data):
        self._snapshot()
        self.counter += 1
        name = f"s{self.counter}"
        self.sites[name] = Site(name, f"198.51.100.{self.counter % 250 + 1}")
        self._check(set(), self._extra(data))

    @precondition(lambda self: self.sites)
    @rule(data=st.data())
    def remove_site(self, data):
        self._snapshot()
        name = data.draw(st.sampled_from(sorted(self.sites)))
        dirty = self._nets_at(name)
        del self.sites[name]
        self.nics = {k: n for k, n in self.nics.items() if n.site != name}
        self._check(dirty, self._extra(data))

    @precondition(lambda self: self.sites)
    @rule(data=st.data())
    def readdress_site(self, data):
        self._snapshot()
        name = data.draw(st.sampled_from(sorted(self.sites)))
        self.counter += 1
        self.sites[name] = Site(name, f"203.0.113.{self.counter % 250 + 1}")
        self._check(self._nets_at(name), self._extra(data))

    # -- networks --------------------------------------------------------------------------------

    @rule(data=st.data(), tenant=st.sampled_from(TENANTS), cidr=st.sampled_from(CIDRS))
    def add_network(self, data, tenant, cidr):
        self._snapshot()
        self.counter += 1
        key = (tenant, f"n{self.counter}")
        self.networks[key] = TenantNetwork(tenant, key[1], cidr)
        self._check({key}, self._extra(data))

    @precondition(lambda self: self.networks)
    @rule(data=st.data())
    def remove_network(self, data):
        self._snapshot()
        key = data.draw(st.sampled_from(sorted(self.networks)))
        del self.networks[key]
        self.nics = {k: n for k, n in self.nics.items() if k[:2] != key}
        self._check({key}, self._extra(data))

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), cidr=st.sampled_from(CIDRS))
    def change_cidr(self, data, cidr):
        self._snapshot()
        key = data.draw(st.sampled_from(sorted(self.networks)))
        self.networks[key] = TenantNetwork(key[0], key[1], cidr)
        self._check({key}, self._extra(data))

    # -- NICs ------------------------------------------------------------------------------------

    @precondition(lambda self: self.sites and self.networks)
    @rule(data=st.data(), macs=st.lists(st.integers(0, 40), min_size=1, max_size=4))
    def add_nics(self, data, macs):
        self._snapshot()
        dirty = set()
        for m in macs:
            key = data.draw(st.sampled_from(sorted(self.networks)))
            site = data.draw(st.sampled_from(sorted(self.sites)))
            mac = f"52:54:00:00:00:{m:02x}"
            if (*key, mac) in self.nics:
                continue
            self.counter += 1
            self.nics[(*key, mac)] = Nic(f"vm{self.counter}", site, key[0], key[1], mac.upper())
            dirty.add(key)
        self._check(dirty, self._extra(data))

    @precondition(lambda self: self.nics)
    @rule(data=st.data())
    def remove_nic(self, data):
        self._snapshot()
        key = data.draw(st.sampled_from(sorted(self.nics)))
        del self.nics[key]
        self._check({key[:2]}, self._extra(data))

    @precondition(lambda self: self.nics and len(self.sites) > 1)
    @rule(data=st.data())
    def move_nic(self, data):
        self._snapshot()
        key = data.draw(st.sampled_from(sorted(self.nics)))
        site = data.draw(st.sampled_from(sorted(self.sites)))
        old = self.nics[key]
        self.nics[key] = Nic(old.vm, site, old.tenant, old.network, old.mac)
        self._check({key[:2]}, self._extra(data))

    @invariant()
    def the_plan_covers_exactly_the_inputs(self):
        assert set(self.plan.networks) == set(self.networks)
        assert set(self.plan.sites) == set(self.sites)


IncrementalLife.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_incremental_replan_equals_a_full_replan = IncrementalLife.TestCase


def test_a_network_given_but_not_dirty_is_refused():
    base = plan([Site("a", "192.0.2.1")], [], [])
    net = TenantNetwork("t", "n", "10.0.0.0/24")
    try:
        replan(base, [Site("a", "192.0.2.1")], [net], [], [])
    except PlanError as exc:
        assert "not marked dirty" in str(exc)
    else:
        raise AssertionError("a network outside dirty was accepted")


def test_a_changed_site_with_a_clean_network_there_is_refused():
    net = TenantNetwork("t", "n", "10.0.0.0/24")
    nic = Nic("vm", "a", "t", "n", "52:54:00:00:00:01")
    base = plan([Site("a", "192.0.2.1")], [net], [nic])
    try:
        replan(base, [Site("a", "192.0.2.9")], [], [], [])
    except PlanError as exc:
        assert "not marked dirty" in str(exc) and "site=a" in str(exc)
    else:
        raise AssertionError("a readdressed site was accepted with its network clean")
