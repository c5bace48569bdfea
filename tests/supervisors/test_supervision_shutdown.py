"""Shutdown modes: polite with a timeout, infinity, brutal_kill; and supervisors' own exits."""

from __future__ import annotations

import threading
import time

import pykka
from sup_helpers import Journal, Watch, child_ref, wait_for, worker_spec

from supervisors import (
    KILLED,
    SHUTDOWN,
    ChildSpec,
    SupFlags,
    kill,
    start_supervisor,
    terminate_child,
    which_children,
)


def test_a_polite_shutdown_runs_on_stop_and_reports_shutdown():
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec("a", journal)])
    watch = Watch(child_ref(sup, "a"))
    terminate_child(sup, "a")
    assert watch.down().reason == SHUTDOWN
    assert journal.of("stop") == ["a"]


def test_brutal_kill_abandons_a_stuck_child_without_waiting():
    journal = Journal()
    release = threading.Event()
    sup = start_supervisor(SupFlags(), [worker_spec("stuck", journal, shutdown="brutal_kill")])
    ref = child_ref(sup, "stuck")
    watch = Watch(ref)
    ref.tell(("block", release))
    wait_for(lambda: ref.actor_inbox.qsize() == 0)
    terminate_child(sup, "stuck")  # returns although the child's thread is still blocked
    assert watch.down().reason == KILLED
    assert not ref.is_alive() and ref not in pykka.ActorRegistry.get_all()
    release.set()
    assert journal.of("stop") == []  # abandoned: on_stop never runs


def test_an_expired_shutdown_timeout_abandons_the_child_as_killed():
    journal = Journal()
    gate = threading.Event()
    sup = start_supervisor(SupFlags(), [worker_spec("slow", journal, shutdown=0.05, stop_gate=gate)])
    watch = Watch(child_ref(sup, "slow"))
    started = time.monotonic()
    terminate_child(sup, "slow")
    waited = time.monotonic() - started
    assert watch.down().reason == KILLED
    assert 0.04 <= waited < 2.0
    assert [c.status for c in which_children(sup)] == ["undefined"]
    gate.set()  # the abandoned thread finishes its on_stop by itself, unobserved
    wait_for(lambda: journal.of("stop") == ["slow"])


def test_an_infinity_shutdown_waits_for_the_child_however_long_it_takes():
    journal = Journal()
    gate = threading.Event()
    sup = start_supervisor(SupFlags(), [worker_spec("slow", journal, shutdown="infinity", stop_gate=gate)])
    watch = Watch(child_ref(sup, "slow"))
    done = threading.Event()
    threading.Thread(target=lambda: (terminate_child(sup, "slow"), done.set()), daemon=True).start()
    assert not done.wait(0.2)  # still waiting: the child has not finished on_stop
    gate.set()
    assert done.wait(5)
    assert watch.down().reason == SHUTDOWN


def test_stopping_a_supervisor_stops_its_children_in_reverse_order():
    journal = Journal()
    sup = start_supervisor(SupFlags(), [worker_spec(n, journal) for n in "abc"])
    sup.stop()
    assert journal.of("stop") == ["c", "b", "a"]
    assert pykka.ActorRegistry.get_all() == []


def test_killing_a_supervisor_takes_its_children_down_through_their_links():
    sup = start_supervisor(SupFlags(), [worker_spec("a", Journal())])
    watch = Watch(child_ref(sup, "a"))
    kill(sup)
    assert watch.down().reason == KILLED


def test_a_subtree_stops_when_its_parent_is_killed():
    inner = ChildSpec(id="inner", type="supervisor",
                      start=lambda: start_supervisor(SupFlags(), [worker_spec("leaf", Journal())]))
    top = start_supervisor(SupFlags(), [inner])
    inner_ref = child_ref(top, "inner")
    leaf_watch = Watch(child_ref(inner_ref, "leaf"))
    inner_watch = Watch(inner_ref)
    kill(top)
    assert inner_watch.down().reason == KILLED
    assert leaf_watch.down().reason == SHUTDOWN  # stopped in order by its own supervisor
