"""Remote monitors and links, node death (SIGKILL) and partitions, between real OS processes."""

from __future__ import annotations

import queue
import time

import pytest
import supervisors
from runtime_support import Linked, Trapper, wait_for
from runtime_messages import Crash, Echo, Slow, Stop

from wind_actors.errors import ActorError, NodeDownError
from wind_actors.runtime import NodeDown, NodeUp


@pytest.fixture
def peer(spawn, local_node):
    handle = spawn("peer1@proc")
    local_node.connect(handle.name, handle.address)
    return handle


def _watch(node, address):
    downs: queue.Queue = queue.Queue()
    mid = node.monitor(node.ref(address), downs.put)
    return mid, downs


def test_a_monitor_gets_the_real_exception_when_the_remote_actor_crashes(local_node, peer):
    mid, downs = _watch(local_node, "crasher@peer1@proc")
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))  # the MONITOR is in before the crash
    local_node.ref("crasher@peer1@proc").tell(Crash("on purpose"))
    down = downs.get(timeout=5)
    assert down.monitor_id == mid
    assert down.ref == local_node.ref("crasher@peer1@proc")
    assert isinstance(down.reason, ActorError)
    assert down.reason.remote_type == "builtins.RuntimeError"
    assert "on purpose" in str(down.reason)


def test_a_monitor_gets_normal_when_the_remote_actor_stops(local_node, peer):
    _, downs = _watch(local_node, "crasher@peer1@proc")
    local_node.ref("crasher@peer1@proc").tell(Stop())
    assert downs.get(timeout=5).reason == supervisors.NORMAL


def test_monitoring_a_name_nobody_registered_gives_noproc(local_node, peer):
    _, downs = _watch(local_node, "nobody@peer1@proc")
    assert downs.get(timeout=5).reason == supervisors.NOPROC


def test_a_demonitored_remote_actor_sends_no_down(local_node, peer):
    mid, downs = _watch(local_node, "crasher@peer1@proc")
    assert local_node.demonitor(mid) is True
    _, control = _watch(local_node, "crasher@peer1@proc")
    local_node.ref("crasher@peer1@proc").tell(Crash("x"))
    control.get(timeout=5)  # the second monitor fired, so the first one had its chance
    assert downs.empty()


def test_killing_the_peer_process_gives_noconnection_nodedown_and_fails_asks_at_once(
        local_node, peer):
    events: queue.Queue = queue.Queue()
    local_node.subscribe(events.put)
    _, downs = _watch(local_node, "echo@peer1@proc")
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    future = local_node.ref("echo@peer1@proc").ask_future(Slow(30), timeout=30)
    killed_at = time.monotonic()
    peer.kill()
    assert downs.get(timeout=5).reason == supervisors.NOCONNECTION
    with pytest.raises(NodeDownError):
        future.get(timeout=5)
    assert time.monotonic() - killed_at < 1.0  # long before the 30 s ask timeout
    event = events.get(timeout=5)
    assert event == NodeDown("peer1@proc", event.reason)
    assert local_node.peers()["peer1@proc"] == "down"


def test_a_partition_gives_noconnection_then_the_nodes_reconnect_and_monitors_work(
        local_node, peer):
    events: queue.Queue = queue.Queue()
    local_node.subscribe(events.put)
    _, downs = _watch(local_node, "crasher@peer1@proc")
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))

    local_node.partition("peer1@proc")
    assert downs.get(timeout=5).reason == supervisors.NOCONNECTION
    assert events.get(timeout=5) == NodeDown("peer1@proc", "heartbeat_timeout")
    for attempt in range(3):  # an ask into a partition fails at once, whatever the link's state
        started = time.monotonic()
        with pytest.raises(NodeDownError):
            local_node.ref("echo@peer1@proc").ask(Echo(f"through the wall? {attempt}"), timeout=5)
        assert time.monotonic() - started < 0.1

    local_node.heal("peer1@proc")
    assert events.get(timeout=10) == NodeUp("peer1@proc")
    _, downs_after = _watch(local_node, "crasher@peer1@proc")
    assert local_node.ref("echo@peer1@proc").ask(Echo("back")) == Echo("back")
    local_node.ref("crasher@peer1@proc").tell(Crash("after heal"))
    reason = downs_after.get(timeout=5).reason
    assert isinstance(reason, ActorError) and "after heal" in str(reason)


def test_heartbeats_measure_round_trip_time(local_node, peer):
    rtt = wait_for(lambda: local_node.peer_rtt_ms().get("peer1@proc"), timeout=5)
    assert 0 < rtt < 100


def test_a_local_actor_linked_to_a_crashing_remote_actor_exits_with_its_reason(
        local_node, peer):
    actor = Linked.start()
    local_downs: queue.Queue = queue.Queue()
    supervisors.monitor(actor, local_downs.put)
    local_node.link(actor, local_node.ref("crasher@peer1@proc"))
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    local_node.ref("crasher@peer1@proc").tell(Crash("linked"))
    reason = local_downs.get(timeout=5).reason
    assert isinstance(reason, ActorError) and "linked" in str(reason)


def test_a_trapping_local_actor_gets_exit_noconnection_when_the_peer_dies(local_node, peer):
    inbox: queue.Queue = queue.Queue()
    actor = Trapper.start(inbox)
    local_node.link(actor, local_node.ref("echo@peer1@proc"))
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    peer.kill()
    exit_message = inbox.get(timeout=5)
    assert isinstance(exit_message, supervisors.Exit)
    assert exit_message.reason == supervisors.NOCONNECTION
    assert exit_message.ref == local_node.ref("echo@peer1@proc")


def test_a_remote_actor_linked_to_a_local_one_dies_with_it(local_node, peer):
    actor = Linked.start()
    local_node.link(actor, local_node.ref("crasher@peer1@proc"))
    _, downs = _watch(local_node, "crasher@peer1@proc")
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    actor.stop()  # "normal": a link ignores it
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    assert downs.empty()
    actor2 = Linked.start()
    local_node.link(actor2, local_node.ref("crasher@peer1@proc"))
    local_node.ref("echo@peer1@proc").ask(Echo("sync"))
    supervisors.kill(actor2)
    assert downs.get(timeout=5).reason == supervisors.KILLED
