"""Hypothesis: reconciliation never starts a VM twice, never both starts and adopts one, and loses
nothing: after its actions, every wanted VM runs exactly once or is accounted for."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings, strategies as st

from wind_actors.services import ALIVE_STATES, DesiredVM, ObservedVM, reconcile

SITES = ("a", "b", "c")
STATES = ("running", "paused", "migrating", "shutoff", "crashed", "defined", "unknown")


@st.composite
def worlds(draw):
    names = [f"t.app.v{i}" for i in range(draw(st.integers(0, 6)))]
    desired = [DesiredVM(n, draw(st.sampled_from(SITES + (None,))),
                         draw(st.sampled_from(["always", "on-failure", "never"])),
                         draw(st.sampled_from(["running"] * 4 + ["stopped"]))) for n in names]
    candidates = names + ["t.gone.v0", "t.gone.v1"]
    observed = draw(st.lists(st.builds(ObservedVM, st.sampled_from(candidates), st.sampled_from(SITES),
                                       st.sampled_from(STATES)), max_size=10,
                             unique_by=lambda v: (v.name, v.site)))
    observed += [ObservedVM(f"foreign{i}", draw(st.sampled_from(SITES)), "running", managed=False)
                 for i in range(draw(st.integers(0, 2)))]
    up = draw(st.sets(st.sampled_from(SITES)))
    tracked = draw(st.sets(st.sampled_from(names))) if names else set()
    return desired, observed, up, tracked


@settings(max_examples=300)
@given(worlds())
def test_reconciliation_invariants(world):
    desired, observed, up, tracked = world
    result = reconcile(desired, observed, sites_up=up, tracked=tracked)
    wanted = {d.name: d for d in desired}

    # every desired VM gets exactly one of place/start/ignore/lost/adopt
    verdicts = Counter(a.name for k in ("place", "start", "ignore", "lost", "adopt")
                       for a in getattr(result, k) if a.name in wanted)
    assert verdicts == Counter(set(wanted))

    started = {a.name for a in result.start}
    adopted = {a.name for a in result.adopt}
    assert not started & adopted, "a VM both started and adopted"
    assert len(started) == len(result.start), "a VM started twice"

    alive = [v for v in observed if v.managed and v.state in ALIVE_STATES]
    for name in started | {a.name for a in result.place}:
        assert not any(v.name == name for v in alive), f"{name} started while a copy runs"

    stopped = {(a.name, a.site) for a in result.stop}
    assert stopped <= {(v.name, v.site) for v in observed if v.managed}, "stopped something not Wind's"

    # Apply the actions: what runs afterwards?
    running = Counter(v.name for v in alive if (v.name, v.site) not in stopped)
    running.update(started | {a.name for a in result.place})
    for name, want in wanted.items():
        if want.state == "stopped":
            assert running[name] == 0, f"{name} should be stopped"
            continue
        assert running[name] <= 1, f"{name} runs {running[name]} times"
        had_copy = any(v.name == name for v in alive)
        if had_copy:
            assert running[name] == 1, f"{name} was running and got lost"
        elif running[name] == 0:
            # not running afterwards: only allowed when lost, or a policy/unknown state says leave it
            kinds = {a.kind for a in result if a.name == name}
            assert kinds <= {"lost", "ignore"}
            if "ignore" in kinds:
                here = [v for v in observed if v.name == name and v.site == want.site and v.managed]
                assert want.site in up and here and here[0].state not in ALIVE_STATES
    for name in {v.name for v in observed if v.managed} - set(wanted):
        assert running[name] == 0, f"{name} is not wanted but still runs"
    assert all(a.kind == "ignore" for a in result if a.name.startswith("foreign"))
