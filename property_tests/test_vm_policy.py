"""Properties of the pure parts of the running system: VM restart decisions and the pool the
controller schedules into (issue 5)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wind_actors.agent import ACTIVE, converge_action, restart_wanted
from wind_actors.controller import SiteView, Snapshot, build_pool
from wind_actors.services import DesiredVM, Host, ObservedVM, Resources, SiteReport, Slot, reconcile

POLICIES = st.sampled_from(["always", "on-failure", "never"])
STATES = st.sampled_from(["running", "paused", "pending", "migrating", "defined", "shutoff",
                          "crashed", "unknown"])


@given(POLICIES, st.sampled_from(["defined", "shutoff", "crashed"]))
def test_agent_and_controller_agree_on_whether_a_stopped_vm_comes_back(policy, state):
    result = reconcile([DesiredVM("t.a.x-0", "s", policy)], [ObservedVM("t.a.x-0", "s", state)],
                       sites_up=["s"])
    controller_restarts = bool(result.start)
    assert controller_restarts == restart_wanted(policy, state)


@given(st.one_of(st.none(), STATES), POLICIES, st.booleans())
def test_a_vm_actor_never_starts_a_running_vm_and_holds_only_what_its_policy_keeps_down(observed, policy, first):
    action = converge_action(observed, policy, first=first)
    if observed in ACTIVE or observed == "unknown":
        assert action == "watch"
    elif observed is None:
        assert action in ("define_start", "hold")
        assert action == "define_start" or not first
    else:
        assert (action == "start") == restart_wanted(policy, observed)
        assert action in ("start", "hold")


_vm_states = st.sampled_from(["running", "crashed", "shutoff", None])


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), _vm_states), max_size=12))
def test_the_pool_reserves_exactly_the_placed_vms_that_do_not_run_yet(slots):
    hosts = tuple(Host(f"h{i}", 64, 65536, 1000) for i in range(3))
    vms = {f"vm-{n}": {"state": state} for n, (_, _, state) in enumerate(slots) if state is not None}
    reported = frozenset(name for name, row in vms.items() if row["state"] == "running")
    view = SiteView("s", "agent@s", None, SiteReport("s", "sim", hosts), vms, True, 0.0, reported)
    pending = [(f"vm-{n}", Slot(f"x-{n}", "x", "s", f"h{h}", Resources(c, 128 * c, 0)))
               for n, (h, c, _) in enumerate(slots)]
    pool = build_pool(Snapshot({"s": view}), pending)
    expected = sum(c for _, c, state in slots if state != "running")
    assert pool.sites["s"].used.cpus == expected
    for i in range(3):
        want = sum(c for h, c, state in slots if h == i and state != "running")
        assert pool.sites["s"].host(f"h{i}").used_cpus == want
