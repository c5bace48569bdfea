"""Death watch: monitors and links between WatchedActors, and exit reasons."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest
from sup_helpers import Crash, Journal, Watch, Worker, wait_for

from supervisors import (
    KILLED,
    NOPROC,
    NORMAL,
    Exit,
    NotWatchableError,
    StartError,
    WatchedActor,
    demonitor,
    exit_signal,
    kill,
    link,
    monitor,
    unlink,
)


def test_monitor_reports_an_exception_raised_in_tell_as_the_reason():
    ref = Worker.start("a")
    watch = Watch(ref)
    ref.tell("crash")
    down = watch.down()
    assert isinstance(down.reason, Crash)
    assert down.ref is ref
    assert down.monitor_id == watch.monitor_id


def test_monitor_reports_an_exception_raised_in_on_start():
    gate = threading.Event()

    class SlowFailer(WatchedActor):
        def on_start(self):
            gate.wait()
            raise Crash("no start")

    ref = SlowFailer.start()
    watch = Watch(ref)
    gate.set()
    assert isinstance(watch.down().reason, Crash)


def test_monitor_reports_normal_when_stopped_from_outside():
    ref = Worker.start("a")
    watch = Watch(ref)
    ref.stop()
    assert watch.down().reason == NORMAL


def test_monitor_reports_the_reason_given_to_stop_with():
    ref = Worker.start("a")
    watch = Watch(ref)
    ref.tell(("exit", ("shutdown", "maintenance")))
    assert watch.down().reason == ("shutdown", "maintenance")


def test_monitoring_a_dead_actor_gives_noproc_at_once():
    ref = Worker.start("a")
    ref.stop()
    got = []
    monitor(ref, got.append)
    assert [d.reason for d in got] == [NOPROC]


def test_a_monitoring_actor_receives_down_as_a_message():
    inbox: queue.Queue = queue.Queue()

    class Watcher(WatchedActor):
        def on_receive(self, message):
            inbox.put(message)

    watcher = Watcher.start()
    ref = Worker.start("a")
    mid = monitor(ref, watcher)
    ref.tell("crash")
    down = inbox.get(timeout=5)
    assert (down.monitor_id, down.ref, type(down.reason)) == (mid, ref, Crash)


def test_demonitor_cancels_the_down():
    ref = Worker.start("a")
    got = []
    mid = monitor(ref, got.append)
    assert demonitor(mid) is True
    assert demonitor(mid) is False
    later = Watch(ref)
    ref.stop()
    later.down()
    assert got == []


def test_an_exception_while_answering_an_ask_goes_to_the_caller_and_the_actor_lives():
    ref = Worker.start("a")
    watch = Watch(ref)
    with pytest.raises(Crash):
        ref.ask("crash")
    assert ref.ask("ping")[0] == "pong"
    ref.stop()
    assert watch.down().reason == NORMAL


def test_crash_on_ask_error_returns_the_exception_and_crashes_the_actor():
    class Strict(Worker):
        crash_on_ask_error = True

    ref = Strict.start("a")
    watch = Watch(ref)
    with pytest.raises(Crash):
        ref.ask("crash")
    assert isinstance(watch.down().reason, Crash)


def test_a_linked_abnormal_exit_stops_the_peer_with_the_same_reason():
    a, b = Worker.start("a"), Worker.start("b")
    link(a, b)
    watch_b = Watch(b)
    a.tell("crash")
    assert isinstance(watch_b.down().reason, Crash)


def test_a_linked_normal_exit_leaves_the_peer_running():
    a, b = Worker.start("a"), Worker.start("b")
    link(a, b)
    watch_a = Watch(a)
    a.stop()
    watch_a.down()
    assert b.ask("ping")[0] == "pong"


def test_trap_exits_turns_a_linked_exit_into_an_exit_message():
    inbox: queue.Queue = queue.Queue()

    class Trapper(WatchedActor):
        trap_exits = True

        def on_receive(self, message):
            inbox.put(message)

    trapper, a = Trapper.start(), Worker.start("a")
    link(trapper, a)
    a.tell("crash")
    message = inbox.get(timeout=5)
    assert isinstance(message, Exit) and message.ref is a and isinstance(message.reason, Crash)
    assert trapper.is_alive()


def test_unlink_stops_the_exit_from_spreading():
    a, b = Worker.start("a"), Worker.start("b")
    link(a, b)
    unlink(b, a)
    watch_a = Watch(a)
    a.tell("crash")
    watch_a.down()
    assert b.ask("ping")[0] == "pong"


def test_linking_to_a_dead_actor_sends_noproc_to_the_live_one():
    dead, live = Worker.start("dead"), Worker.start("live")
    dead.stop()
    watch = Watch(live)
    link(live, dead)
    assert watch.down().reason == NOPROC


def test_watching_a_plain_pykka_actor_is_refused_with_a_clear_error():
    class Plain(pykka.ThreadingActor):
        pass

    ref = Plain.start()
    with pytest.raises(NotWatchableError, match="not a WatchedActor"):
        monitor(ref, lambda d: None)
    with pytest.raises(TypeError):
        link(ref, Worker.start("a"))


def test_start_sync_waits_for_on_start_and_raises_its_exception():
    with pytest.raises(StartError) as info:
        Worker.start_sync("a", fail_start=True)
    assert isinstance(info.value.reason, Crash)
    ref = Worker.start_sync("b")
    assert ref.ask("ping")[0] == "pong"


def test_kill_abandons_a_stuck_actor_which_then_takes_no_more_messages():
    journal = Journal()
    release = threading.Event()
    ref = Worker.start("stuck", journal)
    watch = Watch(ref)
    ref.tell(("block", release))
    wait_for(lambda: not ref.actor_inbox.qsize())  # it is inside the blocking handler
    reply = ref.ask("ping", block=False)
    assert kill(ref) is True
    assert watch.down().reason == KILLED
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("ping")
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        reply.get(timeout=5)
    assert journal.of("stop") == []  # no hook runs after an abandon
    assert kill(ref) is False


def test_an_exit_signal_from_a_remote_link_stops_a_non_trapping_actor_with_its_reason():
    ref = Worker.start("a")
    watch = Watch(ref)
    exit_signal(ref, "remote-ref", "noconnection")
    assert watch.down().reason == "noconnection"


def test_an_exit_signal_reaches_a_trapping_actor_as_an_exit_message():
    inbox: queue.Queue = queue.Queue()

    class Trapper(WatchedActor):
        trap_exits = True

        def on_receive(self, message):
            inbox.put(message)

    ref = Trapper.start()
    exit_signal(ref, "remote-ref", "noconnection")
    assert inbox.get(timeout=5) == Exit("remote-ref", "noconnection")


def test_proxies_work_and_a_failing_proxy_call_is_returned_not_a_crash():
    class Api(WatchedActor):
        def add(self, a, b):
            return a + b

        def fail(self):
            raise Crash("refused")

    proxy = Api.start().proxy()
    assert proxy.add(1, 2).get(timeout=5) == 3
    with pytest.raises(Crash):
        proxy.fail().get(timeout=5)
    assert proxy.add(2, 2).get(timeout=5) == 4


def test_a_queued_ask_fails_with_actor_dead_when_an_exit_signal_stops_the_actor():
    release = threading.Event()
    ref = Worker.start("a")
    ref.tell(("block", release))
    wait_for(lambda: ref.actor_inbox.qsize() == 0)
    pending = ref.ask("ping", block=False)
    exit_signal(ref, "peer", "boom")
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=5)
