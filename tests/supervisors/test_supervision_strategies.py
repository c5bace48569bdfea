"""Restart strategies, restart types, intensity, escalation, auto_shutdown, backoff."""

from __future__ import annotations

import itertools
import threading
from functools import partial

import pytest
from sup_helpers import Crash, Journal, Watch, Worker, child_ref, crash_and_wait, wait_for, worker_spec

from supervisors import (
    SHUTDOWN,
    Backoff,
    ChildSpec,
    ManualClock,
    StartError,
    Supervisor,
    SupFlags,
    start_child,
    start_supervisor,
    terminate_child,
    which_children,
)


def refs(sup):
    return {c.id: c.ref for c in which_children(sup)}


def refs_and_status(sup):
    return {c.id: (c.ref, c.status) for c in which_children(sup)}


def test_children_start_in_order():
    journal = Journal()
    start_supervisor(SupFlags(), [worker_spec(n, journal) for n in "abc"])
    assert journal.of("start") == ["a", "b", "c"]


def test_one_for_one_restarts_only_the_crashed_child():
    journal = Journal()
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec(n, journal) for n in "abc"])
    before = refs(sup)
    crash_and_wait(sup, "b")
    after = refs(sup)
    assert after["a"] is before["a"] and after["c"] is before["c"]
    assert after["b"] is not before["b"] and after["b"].ask("ping")[0] == "pong"
    assert journal.of("start") == ["a", "b", "c", "b"]


def test_one_for_all_stops_the_others_in_reverse_then_starts_all_in_order():
    journal = Journal()
    sup = start_supervisor(SupFlags(strategy="one_for_all", intensity=5),
                           [worker_spec(n, journal) for n in "abc"])
    before = refs(sup)
    crash_and_wait(sup, "b")
    after = refs(sup)
    assert all(after[n] is not before[n] for n in "abc")
    assert journal.of("stop") == ["c", "a"]
    assert journal.of("start") == ["a", "b", "c", "a", "b", "c"]


def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it():
    journal = Journal()
    sup = start_supervisor(SupFlags(strategy="rest_for_one", intensity=5),
                           [worker_spec(n, journal) for n in "abcd"])
    before = refs(sup)
    crash_and_wait(sup, "b")
    after = refs(sup)
    assert after["a"] is before["a"]
    assert all(after[n] is not before[n] for n in "bcd")
    assert journal.of("stop") == ["d", "c"]
    assert journal.of("start")[4:] == ["b", "c", "d"]


def test_simple_one_for_one_starts_children_with_extra_args_and_restarts_them_with_the_same():
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one", intensity=5), [spec])
    one = start_child(sup, 1)
    two = start_child(sup, 2, "x")
    assert one.ask("ping") == ("pong", "dyn", (1,))
    watch = Watch(one)
    one.tell("crash")
    watch.down()
    children = which_children(sup)
    assert [c.id for c in children] == [None, None]
    replies = sorted(c.ref.ask("ping")[2] for c in children)
    assert replies == [(1,), (2, "x")]
    assert two in [c.ref for c in children] and one not in [c.ref for c in children]


def test_a_permanent_child_is_restarted_even_after_a_normal_exit():
    journal = Journal()
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("p", journal)])
    old = child_ref(sup, "p")
    crash_and_wait(sup, "p", ("exit", "normal"))
    assert child_ref(sup, "p") not in (None, old)


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "done")],
                         ids=["normal", "shutdown", "shutdown-detail"])
def test_a_transient_child_stays_down_after_a_normal_exit(reason):
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("t", Journal(), restart="transient")])
    crash_and_wait(sup, "t", ("exit", reason))
    [info] = which_children(sup)
    assert (info.id, info.ref, info.status) == ("t", None, "undefined")


def test_a_transient_child_is_restarted_after_a_crash():
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("t", Journal(), restart="transient")])
    old = child_ref(sup, "t")
    crash_and_wait(sup, "t")
    assert child_ref(sup, "t") not in (None, old)


def test_a_temporary_child_is_never_restarted_and_is_forgotten():
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("tmp", Journal(), restart="temporary")])
    crash_and_wait(sup, "tmp")
    assert which_children(sup) == []


def test_a_temporary_sibling_taken_down_by_one_for_all_is_not_restarted():
    journal = Journal()
    sup = start_supervisor(SupFlags(strategy="one_for_all", intensity=5), [
        worker_spec("a", journal), worker_spec("tmp", journal, restart="temporary"),
        worker_spec("c", journal)])
    crash_and_wait(sup, "a")
    assert [c.id for c in which_children(sup)] == ["c", "a"]  # newest first, as OTP lists them
    assert journal.of("start") == ["a", "tmp", "c", "a", "c"]


def test_exceeding_intensity_stops_children_in_reverse_and_exits_with_shutdown():
    journal = Journal()
    clock = ManualClock()
    sup = start_supervisor(SupFlags(intensity=2, period=10), [worker_spec(n, journal) for n in "abc"],
                           clock=clock)
    sup_watch = Watch(sup)
    crash_and_wait(sup, "b")
    crash_and_wait(sup, "b")
    ref = child_ref(sup, "b")
    ref.tell("crash")
    assert sup_watch.down().reason == SHUTDOWN
    assert journal.of("stop") == ["c", "a"]


def test_restarts_older_than_the_period_no_longer_count():
    clock = ManualClock()
    sup = start_supervisor(SupFlags(intensity=1, period=5), [worker_spec("a", Journal())], clock=clock)
    for _ in range(4):
        crash_and_wait(sup, "a")
        clock.advance(5.01)
    assert sup.is_alive() and child_ref(sup, "a").ask("ping")[0] == "pong"


def test_intensity_zero_gives_up_on_the_first_crash():
    sup = start_supervisor(SupFlags(intensity=0), [worker_spec("a", Journal())])
    sup_watch = Watch(sup)
    child_ref(sup, "a").tell("crash")
    assert sup_watch.down().reason == SHUTDOWN


def test_a_subtree_that_gives_up_is_restarted_by_its_parent():
    journal = Journal()
    inner_spec = ChildSpec(id="inner", type="supervisor", start=lambda: start_supervisor(
        SupFlags(intensity=0), [worker_spec("leaf", journal)], name="inner"))
    top = start_supervisor(SupFlags(intensity=5), [inner_spec], name="top")
    inner = child_ref(top, "inner")
    inner_watch = Watch(inner)
    child_ref(inner, "leaf").tell("crash")
    assert inner_watch.down().reason == SHUTDOWN
    new_inner = wait_for(lambda: child_ref(top, "inner"))
    assert new_inner is not inner
    assert child_ref(new_inner, "leaf").ask("ping")[0] == "pong"


def test_failure_escalates_to_the_top_when_every_level_gives_up():
    journal = Journal()

    def inner():
        return start_supervisor(SupFlags(intensity=0), [worker_spec("leaf", journal)], name="inner")

    mid = ChildSpec(id="mid", type="supervisor", start=lambda: start_supervisor(
        SupFlags(intensity=0), [ChildSpec(id="inner", start=inner, type="supervisor")], name="mid"))
    top = start_supervisor(SupFlags(intensity=0), [mid], name="top")
    top_watch = Watch(top)
    leaf = child_ref(child_ref(child_ref(top, "mid"), "inner"), "leaf")
    leaf.tell("crash")
    assert top_watch.down().reason == SHUTDOWN


def test_a_child_failing_to_start_stops_the_started_ones_in_reverse_and_fails_the_start():
    journal = Journal()
    bad = ChildSpec(id="bad", start=partial(Worker.start, "bad", journal, fail_start=True))
    with pytest.raises(StartError) as info:
        start_supervisor(SupFlags(), [worker_spec("a", journal), worker_spec("b", journal), bad,
                                      worker_spec("never", journal)])
    assert info.value.child == "bad" and isinstance(info.value.reason, Crash)
    assert journal.of("start") == ["a", "b"]
    assert journal.of("stop") == ["b", "a"]


def test_a_start_callable_that_raises_fails_the_start_with_its_exception():
    def boom():
        raise OSError("no such host")

    with pytest.raises(StartError, match="no such host") as info:
        start_supervisor(SupFlags(), [ChildSpec(id="x", start=boom)])
    assert info.value.child == "x" and isinstance(info.value.reason, OSError)


def test_a_failing_restart_is_retried_while_the_supervisor_keeps_answering():
    journal = Journal()
    allow = threading.Event()
    attempts = itertools.count()

    def flaky():
        if next(attempts) > 0 and not allow.is_set():
            raise OSError("hypervisor unreachable")
        return Worker.start("flaky", journal)

    sup = start_supervisor(SupFlags(intensity=10**9, period=3600),
                           [ChildSpec(id="flaky", start=flaky), worker_spec("other", journal)])
    child_ref(sup, "flaky").tell("crash")
    wait_for(lambda: refs_and_status(sup)["flaky"] == (None, "restarting"))
    assert child_ref(sup, "other").ask("ping")[0] == "pong"
    allow.set()
    ref = wait_for(lambda: child_ref(sup, "flaky"))
    assert ref.ask("ping")[0] == "pong"


def test_retries_of_a_failing_restart_count_towards_intensity():
    attempts = itertools.count()

    def once():
        if next(attempts) > 0:
            raise OSError("gone for good")
        return Worker.start("once")

    sup = start_supervisor(SupFlags(intensity=3, period=3600), [ChildSpec(id="once", start=once)])
    sup_watch = Watch(sup)
    child_ref(sup, "once").tell("crash")
    assert sup_watch.down().reason == SHUTDOWN
    assert next(attempts) == 4  # the first start, 3 counted restart attempts; the 4th exceeds


@pytest.mark.parametrize("mode", ["any_significant", "all_significant"])
def test_auto_shutdown_when_significant_children_exit(mode):
    flags = SupFlags(intensity=5, auto_shutdown=mode)
    sup = start_supervisor(flags, [
        worker_spec("s1", Journal(), restart="transient", significant=True),
        worker_spec("s2", Journal(), restart="transient", significant=True),
        worker_spec("plain", Journal())])
    sup_watch = Watch(sup)
    s2 = child_ref(sup, "s2")
    if mode == "all_significant":
        crash_and_wait(sup, "s1", ("exit", "normal"))
        assert sup.is_alive()
        s2.tell(("exit", "normal"))
    else:
        child_ref(sup, "s1").tell(("exit", "normal"))
    assert sup_watch.down().reason == SHUTDOWN


def test_auto_shutdown_never_ignores_exits_of_children():
    sup = start_supervisor(SupFlags(), [worker_spec("t", Journal(), restart="transient")])
    crash_and_wait(sup, "t", ("exit", "normal"))
    assert sup.is_alive()


def test_backoff_delays_a_restart_until_the_clock_has_moved_on():
    clock = ManualClock()
    spec = worker_spec("b", Journal(), backoff=Backoff(initial=1.0, maximum=8.0, multiplier=2.0, jitter=0))
    sup = start_supervisor(SupFlags(intensity=10, period=1000), [spec], clock=clock)
    crash_and_wait(sup, "b")
    assert which_children(sup)[0].status == "restarting"
    clock.advance(0.99)
    assert which_children(sup)[0].status == "restarting"
    clock.advance(0.02)
    wait_for(lambda: child_ref(sup, "b"))
    crash_and_wait(sup, "b")  # the second consecutive restart waits twice as long
    clock.advance(1.5)
    assert which_children(sup)[0].status == "restarting"
    clock.advance(0.6)
    assert wait_for(lambda: child_ref(sup, "b")).ask("ping")[0] == "pong"


def test_backoff_resets_after_the_child_ran_long_enough():
    clock = ManualClock()
    spec = worker_spec("b", Journal(), backoff=Backoff(initial=1.0, maximum=4.0, jitter=0, reset_after=10))
    sup = start_supervisor(SupFlags(intensity=10, period=1), [spec], clock=clock)
    for _ in range(3):
        crash_and_wait(sup, "b")
        clock.advance(1.0)  # a reset run each time: always the initial delay
        wait_for(lambda: child_ref(sup, "b"))
        clock.advance(10)


def test_terminating_a_child_waiting_for_its_backoff_cancels_the_restart():
    clock = ManualClock()
    spec = worker_spec("b", Journal(), backoff=Backoff(initial=1.0, jitter=0))
    sup = start_supervisor(SupFlags(intensity=10), [spec], clock=clock)
    crash_and_wait(sup, "b")
    terminate_child(sup, "b")
    clock.advance(5)
    assert which_children(sup)[0].status == "undefined"


def test_a_subclass_declares_its_children_in_init():
    journal = Journal()

    class Site(Supervisor):
        def init(self):
            return SupFlags(strategy="rest_for_one"), [worker_spec("driver", journal),
                                                       worker_spec("vm", journal)]

    sup = Site.start_sync(name="site")
    assert [c.id for c in which_children(sup)] == ["vm", "driver"]  # newest first, as OTP lists them
