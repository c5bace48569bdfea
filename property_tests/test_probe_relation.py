"""The RTT probe relation under Hypothesis: sites join, change neighbours and leave at random.

After every step: no site probes itself or more than ``limit`` others, none is probed by more
than ``probed_by``, the reverse index is exactly the inverse of the probes, trust is symmetric
(A trusts B whenever A probes B or B probes A, and only then), and every site whose trust set
changed is among the sites the step returned (which is what lets the controller re-tell only
those), and those are a bounded few. A site that joins probes every other site while there are
at most ``limit`` of them.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wind_actors.controller._probes import ProbeRelation, probe_peers

NAMES = [f"s{i:02d}" for i in range(40)]


class ProbeRelationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.relation = ProbeRelation(limit=3, probed_by=5)
        self.before: dict[str, frozenset[str]] = {}

    def _step(self, affected: set[str]) -> None:
        after = {s: self.relation.trusts(s) for s in self.relation.sites()}
        changed = {s for s in after if after[s] != self.before.get(s)}
        assert changed <= affected, f"trust changed at {changed - affected} unreported"
        self.before = after

    @rule(site=st.sampled_from(NAMES), neighbours=st.sets(st.sampled_from(NAMES), max_size=6))
    def join(self, site: str, neighbours: set[str]) -> None:
        known = [s for s in self.relation.sites() if s != site]
        new = site not in self.relation
        affected = self.relation.join(site, neighbours)
        if new and len(known) <= self.relation.limit:
            assert set(self.relation.probes(site)) == set(known)
        assert len(affected) <= 1 + 2 * self.relation.limit  # itself, the probes it dropped and took
        self._step(affected)

    @precondition(lambda self: len(self.relation) > 0)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from(sorted(self.relation.sites())))
        affected = self.relation.leave(site)
        assert site not in self.relation and site not in affected
        # what it probed, what probed it, and one replacement each of those took
        assert len(affected) <= self.relation.limit + 2 * self.relation.probed_by_limit
        self.before.pop(site, None)
        self._step(affected)

    @invariant()
    def bounded_and_symmetric(self) -> None:
        r = self.relation
        sites = set(r.sites())
        for s in sites:
            out = r.probes(s)
            assert len(out) == len(set(out)) <= r.limit and s not in out
            assert set(out) <= sites
            assert len(r.probed_by(s)) <= r.probed_by_limit
            assert r.probed_by(s) == {o for o in sites if s in r.probes(o)}
            for o in r.trusts(s):
                assert s in r.trusts(o), f"{s} trusts {o} but not the other way"
                assert o in out or s in r.probes(o)


TestProbeRelation = ProbeRelationMachine.TestCase
TestProbeRelation.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@settings(max_examples=100, deadline=None)
@given(st.sets(st.sampled_from(NAMES), min_size=1), st.sets(st.sampled_from(NAMES)),
       st.integers(min_value=0, max_value=10))
def test_probe_peers_is_bounded_neighbours_first_and_order_free(others, neighbours, limit):
    chosen = probe_peers("s00", sorted(others), neighbours, limit)
    assert len(chosen) == len(set(chosen)) <= limit and "s00" not in chosen
    assert set(chosen) <= others
    near = [s for s in chosen if s in neighbours]
    assert chosen[:len(near)] == near  # neighbours first
    assert len(near) == min(limit, len((others & neighbours) - {"s00"}))
    assert chosen == probe_peers("s00", sorted(others, reverse=True), sorted(neighbours), limit)


def test_in_a_big_shared_network_the_probes_spread_over_the_sites():
    sites = [f"site-{i:03d}" for i in range(200)]
    relation = ProbeRelation()
    for site in sites:  # one tenant network spans them all: every site is every site's neighbour
        relation.join(site, sites)
    probed = [len(relation.probed_by(s)) for s in sites]
    assert max(probed) <= relation.probed_by_limit
    # by name, the first 8 would have been probed by all; by rendezvous weight, most sites are
    assert sum(1 for n in probed if n > 0) >= 150
