"""Edge cases checked against Erlang/OTP 25's ``supervisor.erl``, one OTP rule per test.

Each test names the rule it checks; a comment in it points at the OTP code behind the rule.
"""

from __future__ import annotations

import itertools
import queue
import threading
from functools import partial
from typing import Any

import pytest
from sup_helpers import Crash, Journal, Watch, Worker, child_ref, crash_and_wait, worker_spec

from supervisors import (
    Backoff,
    ChildError,
    ChildSpec,
    Exit,
    ManualClock,
    Outcome,
    SupFlags,
    WatchedActor,
    delete_child,
    exit_signal,
    get_childspec,
    link,
    restart_child,
    start_child,
    start_supervisor,
    terminate_child,
    which_children,
)


def outcome_of(call: Any, *args: Any) -> Outcome:
    with pytest.raises(ChildError) as info:
        call(*args)
    return info.value.outcome


def ids(sup: Any) -> list[Any]:
    return [c.id for c in which_children(sup)]


class ExitProbe(WatchedActor):
    """Traps exits and hands each Exit to a queue, to know when a link has fired."""

    trap_exits = True
    use_daemon_thread = True

    def __init__(self, heard: queue.Queue[Exit]) -> None:
        super().__init__()
        self.heard = heard

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Exit):
            self.heard.put(message)
        return None


def flaky_start(name: str, journal: Journal, outcomes: list[str], called: list[threading.Event]) -> Any:
    """A start function whose n-th call does ``outcomes[n]``: "start", "fail" or "ignore".

    ``called[n]`` is set during the n-th call, in the supervisor's thread: an ask
    made after it is answered once the supervisor has handled that start.
    """
    calls = itertools.count()

    def start() -> Any:
        n = next(calls)
        called[n].set()
        if outcomes[n] == "fail":
            raise OSError(f"{name}: start {n} fails")
        if outcomes[n] == "ignore":
            return None
        return Worker.start(name, journal)

    return start


# -- 1. which_children's order -----------------------------------------------------


def test_which_children_lists_the_newest_child_first():
    # OTP keeps {Ids, Db} with the last started id at the head (do_save_child, start_children).
    sup = start_supervisor(SupFlags(), [worker_spec(n, Journal()) for n in "abc"])
    assert ids(sup) == ["c", "b", "a"]


def test_a_child_added_by_start_child_comes_first_and_is_stopped_first():
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec("a", journal), worker_spec("b", journal)])
    start_child(sup, worker_spec("late", journal))
    assert ids(sup) == ["late", "b", "a"]
    sup.stop()
    assert journal.of("stop") == ["late", "b", "a"]  # the reporting order is the shutdown order


def test_a_child_deleted_and_added_again_moves_to_the_front_of_which_children():
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec(n, journal) for n in "abc"])
    terminate_child(sup, "a")
    delete_child(sup, "a")
    start_child(sup, worker_spec("a", journal))
    assert ids(sup) == ["a", "c", "b"]
    sup.stop()
    assert journal.of("stop") == ["a", "a", "c", "b"]  # terminated once, then stopped first


def test_a_restarted_or_terminated_child_keeps_its_place_in_which_children():
    # restart_child and a restart update the child in place (set_pid); so does terminate (del_child).
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec(n, Journal()) for n in "abc"])
    crash_and_wait(sup, "b")
    terminate_child(sup, "a")
    assert ids(sup) == ["c", "b", "a"]
    restart_child(sup, "a")
    assert ids(sup) == ["c", "b", "a"]


def test_rest_for_one_still_restarts_the_children_started_after_the_crashed_one():
    journal = Journal()
    sup = start_supervisor(SupFlags(strategy="rest_for_one", intensity=5),
                           [worker_spec(n, journal) for n in "abc"])
    start_child(sup, worker_spec("d", journal))
    crash_and_wait(sup, "b")
    assert journal.of("stop") == ["d", "c"]
    assert journal.of("start")[4:] == ["b", "c", "d"]
    assert ids(sup) == ["d", "c", "b", "a"]


def test_simple_one_for_one_lists_children_oldest_first_and_a_restarted_one_last():
    # OTP 25 keeps dynamic children in a map keyed by pid; maps:keys/1 of a small map is in
    # term order, and local pids order by creation.
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one", intensity=5), [spec])
    one = start_child(sup, 1)
    start_child(sup, 2)
    start_child(sup, 3)
    watch = Watch(one)
    one.tell("crash")
    watch.down()
    assert [c.ref.ask("ping")[2] for c in which_children(sup)] == [(2,), (3,), (1,)]


def test_simple_one_for_one_lists_a_child_being_restarted_after_the_running_ones():
    # A child being restarted is keyed {restarting, OldPid}; in term order tuples follow pids.
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None), backoff=Backoff(jitter=0))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one", intensity=5), [spec],
                           clock=ManualClock())
    one = start_child(sup, 1)
    two = start_child(sup, 2)
    watch = Watch(one)
    one.tell("crash")
    watch.down()
    assert [(c.ref, c.status) for c in which_children(sup)] == [(two, "running"), (None, "restarting")]


# -- 2. terminate_child by ref on a supervisor that is not simple_one_for_one ------------


def test_terminate_child_by_ref_answers_not_found_and_stops_nothing_unless_simple_one_for_one():
    # find_child/2 looks a pid up among dynamic children only; otherwise the pid is an unknown id.
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec("a", journal)])
    ref = child_ref(sup, "a")
    assert outcome_of(terminate_child, sup, ref) == Outcome.NOT_FOUND
    assert [(c.ref, c.status) for c in which_children(sup)] == [(ref, "running")]
    assert journal.of("stop") == []


def test_get_childspec_by_ref_answers_not_found_unless_simple_one_for_one():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    assert outcome_of(get_childspec, sup, child_ref(sup, "a")) == Outcome.NOT_FOUND


# -- 3. a restart whose start returns ignore ------------------------------------------


def test_a_restart_retry_whose_start_returns_ignore_leaves_the_child_undefined():
    # restart(one_for_one, ...): {ok, undefined} is set_pid(undefined), not restarting.
    called = [threading.Event() for _ in range(3)]
    start = flaky_start("f", Journal(), ["start", "fail", "ignore"], called)
    sup = start_supervisor(SupFlags(intensity=5), [ChildSpec(id="f", start=start)])
    child_ref(sup, "f").tell("crash")
    assert called[2].wait(5)  # the retry
    assert [(c.id, c.ref, c.status) for c in which_children(sup)] == [("f", None, "undefined")]
    assert outcome_of(start_child, sup, ChildSpec(id="f", start=start)) == Outcome.ALREADY_PRESENT


def test_a_delayed_restart_whose_start_returns_ignore_leaves_the_child_undefined():
    clock = ManualClock()
    called = [threading.Event() for _ in range(2)]
    start = flaky_start("b", Journal(), ["start", "ignore"], called)
    sup = start_supervisor(SupFlags(intensity=5), [ChildSpec(id="b", start=start, backoff=Backoff(jitter=0))],
                           clock=clock)
    crash_and_wait(sup, "b")
    clock.advance(1)
    assert called[1].wait(5)
    assert [c.status for c in which_children(sup)] == ["undefined"]


# -- 4. only the parent's exit stops a supervisor -------------------------------------


def test_a_supervisor_ignores_the_exit_of_a_linked_process_that_is_not_its_parent():
    # handle_info({'EXIT', Pid, _}) for a pid that is no child: {noreply, State}.
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec("a", journal)])
    stranger = Worker.start("stranger")
    link(stranger, sup)
    heard: queue.Queue[Exit] = queue.Queue()
    link(stranger, ExitProbe.start(heard))  # linked after the supervisor: told after it
    stranger.tell("crash")
    assert isinstance(heard.get(timeout=5).reason, Crash)
    assert [(c.id, c.status) for c in which_children(sup)] == [("a", "running")]
    assert journal.of("stop") == []


def test_a_supervisor_ignores_an_exit_signal_from_a_remote_sender_that_is_not_its_parent():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    exit_signal(sup, "remote-ref", "noconnection")
    assert [(c.id, c.status) for c in which_children(sup)] == [("a", "running")]


def test_a_supervisor_started_by_an_actor_stops_when_that_linked_parent_exits():
    # The caller of start_link is the parent: gen_server stops on {'EXIT', Parent, Reason}.
    class Starter(WatchedActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            if message == "start":
                sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
                link(self.actor_ref, sup)
                return sup
            raise Crash("starter crashed")

    starter = Starter.start()
    sup = starter.ask("start")
    watch = Watch(sup)
    starter.tell("crash")
    assert isinstance(watch.down().reason, Crash)


# -- 5. auto_shutdown all_significant and a child being restarted ----------------------


def test_all_significant_does_not_shut_down_while_a_significant_child_is_being_restarted():
    # do_auto_shutdown(all_significant): only a pid of undefined counts as gone; {restarting, _} lives.
    retried, allow, restarted = threading.Event(), threading.Event(), threading.Event()
    attempts = itertools.count()

    def s1() -> Any:
        n = next(attempts)
        if n > 0 and not allow.is_set():
            if n > 1:
                retried.set()
            raise OSError("s1 cannot start yet")
        ref = Worker.start("s1")
        if n > 0:
            restarted.set()
        return ref

    sup = start_supervisor(SupFlags(intensity=10**9, period=3600, auto_shutdown="all_significant"), [
        ChildSpec(id="s1", start=s1, restart="transient", significant=True),
        worker_spec("s2", Journal(), restart="transient", significant=True)])
    child_ref(sup, "s1").tell("crash")
    assert retried.wait(5)  # its restart failed and is being retried
    crash_and_wait(sup, "s2", ("exit", "normal"))
    assert dict((c.id, c.status) for c in which_children(sup)) == {"s1": "restarting", "s2": "undefined"}
    allow.set()
    assert restarted.wait(5)
    watch = Watch(sup)
    child_ref(sup, "s1").tell(("exit", "normal"))  # now the last significant child is gone
    assert watch.down().reason == "shutdown"


# -- further OTP edge cases -----------------------------------------------------------


def test_get_childspec_on_simple_one_for_one_finds_the_template_by_its_id():
    # find_child/2 with an id that is not a pid looks it up in {[TemplateId], Db}.
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"), [spec])
    assert get_childspec(sup, "tpl") is spec
    assert outcome_of(get_childspec, sup, "other") == Outcome.NOT_FOUND


def test_get_childspec_on_simple_one_for_one_answers_the_template_for_a_ref_that_has_exited():
    # find_child/2: a pid that is no dynamic child and not alive gives get_dynamic_child/1.
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", None))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one"), [spec])
    gone, stranger = Worker.start("gone"), Worker.start("stranger")
    watch = Watch(gone)
    gone.stop()
    watch.down()
    assert get_childspec(sup, gone) is spec
    assert outcome_of(get_childspec, sup, stranger) == Outcome.NOT_FOUND


def test_terminate_child_with_the_old_ref_of_a_dynamic_child_being_restarted_stops_its_restart():
    # find_child/2 also finds a dynamic child by {restarting, OldPid}; del_child then drops it.
    clock = ManualClock()
    journal = Journal()
    spec = ChildSpec(id="tpl", start=partial(Worker.start, "dyn", journal), backoff=Backoff(jitter=0))
    sup = start_supervisor(SupFlags(strategy="simple_one_for_one", intensity=5), [spec], clock=clock)
    old = start_child(sup, 1)
    watch = Watch(old)
    old.tell("crash")
    watch.down()
    assert get_childspec(sup, old) is spec
    terminate_child(sup, old)
    clock.advance(5)
    assert which_children(sup) == []
    assert journal.of("start") == ["dyn"]  # never restarted


def test_start_child_with_the_id_of_a_child_being_restarted_answers_already_present():
    # handle_start_child/2: a child whose pid is {restarting, _} is not a pid: already_present.
    sup = start_supervisor(SupFlags(intensity=5), [worker_spec("b", Journal(), backoff=Backoff(jitter=0))],
                           clock=ManualClock())
    crash_and_wait(sup, "b")
    assert outcome_of(start_child, sup, worker_spec("b", Journal())) == Outcome.ALREADY_PRESENT
