"""Unlinking across nodes, and what a node's stop does to remote watches (real OS processes)."""

from __future__ import annotations

import queue
import time

import pytest
import supervisors
from runtime_messages import Crash, Echo, Slow
from runtime_support import Linked, Trapper

from wind_actors.errors import NodeDownError
from wind_actors.runtime import NodeDown


@pytest.fixture
def peer(spawn, local_node):
    handle = spawn("peer1@proc")
    local_node.connect(handle.name, handle.address)
    return handle


def _sync(node):
    """One round trip to the peer: everything sent before it has been handled there."""
    assert node.ref("echo@peer1@proc").ask(Echo("sync")) == Echo("sync")


def test_an_unlinked_remote_crash_no_longer_stops_the_local_actor(local_node, peer):
    actor = Linked.start()
    crasher = local_node.ref("crasher@peer1@proc")
    local_node.link(actor, crasher)
    _sync(local_node)
    assert local_node.stats()["links"] == 1
    local_node.unlink(actor, crasher)
    assert local_node.stats()["links"] == 0
    control: queue.Queue = queue.Queue()
    local_node.monitor(crasher, control.put)
    _sync(local_node)
    crasher.tell(Crash("after unlink"))
    assert "after unlink" in str(control.get(timeout=5).reason)
    # a link's exit signal runs on the notifier before the control Down (same crash, earlier
    # monitor), and a signalled actor refuses its next message: this ask would fail
    assert actor.ask("still there?", timeout=5) is None


def test_an_unlinked_local_exit_no_longer_stops_the_remote_actor(local_node, peer):
    actor, witness = Linked.start(), Linked.start()
    crasher = local_node.ref("crasher@peer1@proc")
    collector = local_node.ref("collector@peer1@proc")
    local_node.link(actor, crasher)
    local_node.link(witness, collector)  # a link left in place, to know when signals ran
    _sync(local_node)
    local_node.unlink(actor, crasher)
    _sync(local_node)  # the UNLINK is handled on the peer
    witness_down: queue.Queue = queue.Queue()
    local_node.monitor(collector, witness_down.put)
    supervisors.kill(actor)
    supervisors.kill(witness)
    # The peer runs exit signals in the order the DOWNs came: once the collector has died of
    # the witness's, a signal for the crasher would have been delivered too.
    assert witness_down.get(timeout=5).reason == supervisors.KILLED
    assert crasher.ask(Echo("still there?")) is None  # a signalled crasher would refuse it


def test_linking_twice_is_one_link_and_unlinking_unlinked_actors_does_nothing(local_node, peer):
    inbox: queue.Queue = queue.Queue()
    actor = Trapper.start(inbox)
    crasher = local_node.ref("crasher@peer1@proc")
    local_node.unlink(actor, crasher)  # nothing to undo
    local_node.link(actor, crasher)
    local_node.link(actor, crasher)
    _sync(local_node)
    assert local_node.stats()["links"] == 1
    crasher.tell(Crash("once"))
    exit_message = inbox.get(timeout=5)
    assert isinstance(exit_message, supervisors.Exit) and "once" in str(exit_message.reason)
    _sync(local_node)
    assert inbox.empty()
    assert local_node.stats()["links"] == 0


def test_stopping_a_node_fails_pending_asks_and_gives_noconnection_to_local_watchers(
        local_node, peer):
    events: queue.Queue = queue.Queue()
    local_node.subscribe(events.put)
    downs: queue.Queue = queue.Queue()
    local_node.monitor(local_node.ref("echo@peer1@proc"), downs.put)
    trapped: queue.Queue = queue.Queue()
    trapper = Trapper.start(trapped)
    linked = Linked.start()
    local_node.link(trapper, local_node.ref("crasher@peer1@proc"))
    local_node.link(linked, local_node.ref("crasher@peer1@proc"))
    _sync(local_node)
    slow = local_node.ref("echo@peer1@proc").ask_future(Slow(30), timeout=30)
    stopped: queue.Queue = queue.Queue()
    supervisors.monitor(linked, stopped.put)

    started = time.monotonic()
    local_node.stop()
    with pytest.raises(NodeDownError):
        slow.get(timeout=5)
    assert time.monotonic() - started < 5  # failed by stop(), not by the 30 s timeout
    assert downs.get(timeout=5).reason == supervisors.NOCONNECTION
    exit_message = trapped.get(timeout=5)
    assert isinstance(exit_message, supervisors.Exit)
    assert exit_message.reason == supervisors.NOCONNECTION
    assert events.get(timeout=5) == NodeDown("peer1@proc", "node_stopped")
    assert stopped.get(timeout=5).reason == supervisors.NOCONNECTION  # linked, not trapping
    assert trapper.is_alive()  # local actors belong to the embedding service
    stats = local_node.stats()
    assert stats["pending_asks"] == 0 and stats["monitors"]["outgoing"] == 0
