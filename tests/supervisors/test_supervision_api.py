"""The supervisor API and its named outcomes; validation; tree; reports."""

from __future__ import annotations

from functools import partial

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from sup_helpers import Journal, Worker, child_ref, crash_and_wait, worker_spec

import supervisors
from supervisors import (
    Backoff,
    ChildError,
    ChildSpec,
    NoProcError,
    Outcome,
    SpecError,
    StartError,
    SupFlags,
    add_restart,
    check_childspecs,
    count_children,
    delete_child,
    get_childspec,
    intensity_exceeded,
    restart_child,
    start_child,
    start_supervisor,
    terminate_child,
    tree,
    which_children,
)


def outcome_of(call, *args):
    with pytest.raises(ChildError) as info:
        call(*args)
    return info.value.outcome


def test_all_names_in_dunder_all_are_exported():
    for name in supervisors.__all__:
        assert hasattr(supervisors, name), name
    public = {n for n in dir(supervisors) if not n.startswith("_") and n not in ("errors",)}
    assert public <= set(supervisors.__all__)


def test_start_child_adds_and_starts_a_new_spec():
    sup = start_supervisor(SupFlags(), [])
    ref = start_child(sup, worker_spec("late", Journal()))
    assert ref.ask("ping")[0] == "pong"
    assert [(c.id, c.ref) for c in which_children(sup)] == [("late", ref)]


def test_start_child_with_a_running_id_answers_already_started_with_its_ref():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    with pytest.raises(ChildError) as info:
        start_child(sup, worker_spec("a", Journal()))
    assert info.value.outcome == Outcome.ALREADY_STARTED
    assert info.value.ref is child_ref(sup, "a")


def test_start_child_with_a_stopped_id_answers_already_present():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    terminate_child(sup, "a")
    assert outcome_of(start_child, sup, worker_spec("a", Journal())) == Outcome.ALREADY_PRESENT


def test_start_child_that_fails_raises_start_error_and_is_not_kept():
    sup = start_supervisor(SupFlags(), [])
    bad = ChildSpec(id="bad", start=partial(Worker.start, "bad", fail_start=True))
    with pytest.raises(StartError):
        start_child(sup, bad)
    assert which_children(sup) == []


def test_terminate_child_keeps_the_spec_and_restart_child_starts_it_again():
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec("a", journal)])
    terminate_child(sup, "a")
    assert [(c.ref, c.status) for c in which_children(sup)] == [(None, "undefined")]
    assert journal.of("stop") == ["a"]
    ref = restart_child(sup, "a")
    assert ref.ask("ping")[0] == "pong"


def test_terminate_child_forgets_a_temporary_child():
    sup = start_supervisor(SupFlags(), [worker_spec("t", Journal(), restart="temporary")])
    terminate_child(sup, "t")
    assert which_children(sup) == []


def test_restart_child_outcomes_running_and_not_found():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    assert outcome_of(restart_child, sup, "a") == Outcome.RUNNING
    assert outcome_of(restart_child, sup, "zz") == Outcome.NOT_FOUND
    assert outcome_of(terminate_child, sup, "zz") == Outcome.NOT_FOUND
    assert outcome_of(get_childspec, sup, "zz") == Outcome.NOT_FOUND


def test_restart_and_delete_answer_restarting_while_a_restart_is_pending():
    from supervisors import ManualClock

    clock = ManualClock()
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("b", Journal(), backoff=Backoff(jitter=0))],
                           clock=clock)
    crash_and_wait(sup, "b")
    assert outcome_of(restart_child, sup, "b") == Outcome.RESTARTING
    assert outcome_of(delete_child, sup, "b") == Outcome.RESTARTING


def test_delete_child_removes_a_stopped_spec_and_refuses_a_running_one():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal()), worker_spec("b", Journal())])
    assert outcome_of(delete_child, sup, "a") == Outcome.RUNNING
    terminate_child(sup, "a")
    delete_child(sup, "a")
    assert [c.id for c in which_children(sup)] == ["b"]
    assert outcome_of(delete_child, sup, "a") == Outcome.NOT_FOUND


def test_simple_one_for_one_refuses_id_based_calls():
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"), [spec])
    ref = start_child(sup, 1)
    assert outcome_of(terminate_child, sup, "tpl") == Outcome.SIMPLE_ONE_FOR_ONE
    assert outcome_of(restart_child, sup, "tpl") == Outcome.SIMPLE_ONE_FOR_ONE
    assert outcome_of(delete_child, sup, "tpl") == Outcome.SIMPLE_ONE_FOR_ONE
    assert get_childspec(sup, ref) is spec
    terminate_child(sup, ref)
    assert which_children(sup) == []
    terminate_child(sup, ref)  # already gone: fine, as in OTP


def test_get_childspec_returns_the_spec():
    spec = worker_spec("a", Journal())
    sup = start_supervisor(SupFlags(), [spec])
    assert get_childspec(sup, "a") is spec


def test_count_children_counts_specs_active_supervisors_and_workers():
    inner = ChildSpec(id="inner", type="supervisor",
                      start=lambda: start_supervisor(SupFlags(), [worker_spec("x", Journal())]))
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal()), worker_spec("b", Journal()), inner])
    terminate_child(sup, "b")
    assert count_children(sup) == {"specs": 3, "active": 2, "supervisors": 1, "workers": 2}


def test_tree_returns_the_whole_live_tree_as_plain_data():
    inner = ChildSpec(id="inner", type="supervisor", start=lambda: start_supervisor(
        SupFlags(strategy="one_for_all"), [worker_spec("x", Journal())], name="inner"))
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal()), inner], name="top")
    data = tree(sup)
    assert data["name"] == "top" and data["strategy"] == "one_for_one"
    assert [c["id"] for c in data["children"]] == ["a", "inner"]
    sub = data["children"][1]["tree"]
    assert sub["name"] == "inner" and sub["children"][0]["id"] == "x"
    assert sub["children"][0]["status"] == "running" and sub["children"][0]["actor"] == "Worker"

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float))

    assert plain(data)


def test_calling_a_stopped_supervisor_raises_noproc():
    sup = start_supervisor(SupFlags(), [])
    sup.stop()
    with pytest.raises(NoProcError):
        which_children(sup)


@pytest.mark.parametrize(("flags", "field"), [
    (SupFlags(strategy="one_for_some"), "strategy"),
    (SupFlags(intensity=-1), "intensity"),
    (SupFlags(intensity=True), "intensity"),
    (SupFlags(period=0), "period"),
    (SupFlags(auto_shutdown="sometimes"), "auto_shutdown"),
], ids=["strategy", "intensity-negative", "intensity-bool", "period", "auto_shutdown"])
def test_invalid_flags_are_rejected_before_anything_starts(flags, field):
    journal = Journal()
    with pytest.raises(SpecError) as info:
        start_supervisor(flags, [worker_spec("a", journal)])
    assert info.value.field == field and "allowed" in str(info.value)
    assert journal.of("start") == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"restart": "sometimes"}, "restart"),
    ({"type": "manager"}, "type"),
    ({"shutdown": -1}, "shutdown"),
    ({"shutdown": "polite"}, "shutdown"),
    ({"significant": True}, "significant"),
    ({"start": "not callable"}, "start"),
    ({"id": ["unhashable"]}, "id"),
    ({"backoff": Backoff(initial=5, maximum=1)}, "backoff.maximum"),
    ({"backoff": Backoff(multiplier=0.5)}, "backoff.multiplier"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_child_specs_are_rejected_naming_field_value_and_what_is_allowed(changes, field):
    fields = {"id": "a", "start": Worker.start, **changes}
    with pytest.raises(SpecError) as info:
        check_childspecs([ChildSpec(**fields)])
    assert info.value.field == field
    assert repr(info.value.value) in str(info.value)


def test_a_significant_permanent_child_is_a_bad_combination():
    spec = ChildSpec(id="s", start=Worker.start, significant=True)
    with pytest.raises(SpecError, match="permanent"):
        check_childspecs([spec], "any_significant")


def test_duplicate_child_ids_are_rejected():
    with pytest.raises(SpecError, match="unique"):
        check_childspecs([ChildSpec(id="a", start=Worker.start), ChildSpec(id="a", start=Worker.start)])


def test_simple_one_for_one_needs_exactly_one_spec():
    with pytest.raises(SpecError, match="exactly one"):
        start_supervisor(SupFlags(strategy="simple_one_for_one"), [])


def test_shutdown_defaults_are_five_seconds_for_workers_and_infinity_for_supervisors():
    assert ChildSpec(id="w", start=Worker.start).effective_shutdown == 5.0
    assert ChildSpec(id="s", start=Worker.start, type="supervisor").effective_shutdown == "infinity"
    assert SupFlags() == SupFlags(strategy="one_for_one", intensity=1, period=5.0, auto_shutdown="never")


def test_a_restart_is_reported_as_structured_events():
    sup = start_supervisor(SupFlags(intensity=3), [worker_spec("a", Journal())], name="reporting")
    with structlog.testing.capture_logs() as events:
        crash_and_wait(sup, "a")
        which_children(sup)
    terminated = next(e for e in events if e["event"] == "child_terminated")
    assert terminated["supervisor"] == "reporting" and terminated["child"] == "a"
    assert "crashed" in terminated["reason"] and terminated["restarts"] == 0
    restarted = next(e for e in events if e["event"] == "child_restarted")
    assert (restarted["child"], restarted["restarts"]) == ("a", 1)


def test_giving_up_is_reported_with_the_intensity():
    sup = start_supervisor(SupFlags(intensity=0), [worker_spec("a", Journal())], name="fragile")
    from sup_helpers import Watch

    watch = Watch(sup)
    with structlog.testing.capture_logs() as events:
        child_ref(sup, "a").tell("crash")
        watch.down()
    [gave_up] = [e for e in events if e["event"] == "reached_max_restart_intensity"]
    assert gave_up["supervisor"] == "fragile" and gave_up["child"] == "a" and gave_up["intensity"] == 0


stamps = st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=30)


@given(stamps, st.floats(min_value=0.001, max_value=100), st.integers(min_value=0, max_value=10))
def test_add_restart_keeps_exactly_the_restarts_inside_the_window(times, period, intensity):
    times = sorted(times)
    restarts: tuple[float, ...] = ()
    for i, now in enumerate(times):
        restarts = add_restart(restarts, now, period)
        expected = [t for t in times[: i + 1] if t >= now - period]
        assert sorted(restarts) == sorted(expected)
        assert intensity_exceeded(restarts, intensity) == (len(expected) > intensity)


def test_a_start_returning_a_plain_pykka_actor_fails_and_that_actor_is_stopped():
    import pykka

    from supervisors import NotWatchableError

    class Plain(pykka.ThreadingActor):
        pass

    started = []

    def start_plain():
        started.append(Plain.start())
        return started[-1]

    with pytest.raises(StartError) as info:
        start_supervisor(SupFlags(), [ChildSpec(id="plain", start=start_plain)])
    assert isinstance(info.value.reason, NotWatchableError)
    from sup_helpers import wait_for

    wait_for(lambda: not started[0].is_alive())


class _Rendezvous(supervisors.WatchedActor):
    """Its on_start waits for the other children of the batch at a barrier."""

    use_daemon_thread = True

    def __init__(self, barrier) -> None:
        super().__init__()
        self.barrier = barrier

    def on_start(self) -> None:
        with supervisors.blocking():
            self.barrier.wait()


def test_start_children_starts_each_as_start_child_would():
    journal = Journal()
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", journal))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"), [spec])
    refs = supervisors.start_children(sup, [(1,), (2,), (3,)])
    assert [r.ask("ping") for r in refs] == [("pong", "dyn", (n,)) for n in (1, 2, 3)]
    assert [c.ref for c in which_children(sup)] == refs
    assert supervisors.start_children(sup, []) == []
    assert len(journal.of("start")) == 3


def test_start_children_reports_each_failure_in_its_place_and_keeps_the_others():
    def start(fail):
        return Worker.start("dyn", None, fail_start=fail)

    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"), [ChildSpec(id="tpl", start=start)])
    first, failed, last = supervisors.start_children(sup, [(False,), (True,), (False,)])
    assert isinstance(failed, StartError) and "refuses to start" in str(failed)
    assert first.ask("ping")[0] == "pong" and last.ask("ping")[0] == "pong"
    assert [c.ref for c in which_children(sup)] == [first, last]


def test_start_children_runs_the_on_starts_side_by_side():
    import threading

    barrier = threading.Barrier(3, timeout=10)  # broken unless all three on_starts wait at once
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"),
                           [ChildSpec(id="tpl", start=lambda: _Rendezvous.start(barrier), restart="temporary")])
    results = supervisors.start_children(sup, [(), (), ()])
    assert not any(isinstance(r, BaseException) for r in results), results
    assert len(which_children(sup)) == 3


def test_start_children_needs_a_simple_one_for_one_supervisor():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    with pytest.raises(SpecError, match="simple_one_for_one"):
        supervisors.start_children(sup, [()])
