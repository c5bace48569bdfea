"""Failure detection is symmetric, and the I/O thread survives what its handlers throw.

One-way cuts (``Node.partition(peer, direction=...)``) are seen by both sides; a node frozen
with SIGSTOP finds out on SIGCONT that its peer declared it lost and fires its own monitors;
an exception in a frame handler is counted and the node serves on; a broken inbox stops the
node loudly instead of leaving it deaf.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import supervisors
from runtime_messages import Echo, EchoActor, Slow
from runtime_support import HERE, ROOT, wait_for

import wind_actors.runtime._transport as transport_module
from wind_actors.errors import NodeDownError
from wind_actors.runtime import Node, NodeDown, NodeUp

INTERVAL, MISSES = 0.1, 3
GRACE = INTERVAL * MISSES
# Declared lost 0.6-0.8 x interval*(misses+1) after a cut; the rest is a loaded machine's slack.
DETECTED_WITHIN = GRACE + 2 * INTERVAL + 1.0


def _node(name: str, keys_dir, **extra) -> Node:
    return Node.start(name=name, keys_dir=str(keys_dir), heartbeat_interval=INTERVAL,
                      heartbeat_misses=MISSES, **extra)


@pytest.fixture
def pair(keys_dir):
    """Two in-process nodes that are up for each other, and their membership events."""
    a, b = _node("test@local", keys_dir), _node("peer2@proc", keys_dir)
    events = {a.name: queue.Queue(), b.name: queue.Queue()}
    a.subscribe(events[a.name].put)
    b.subscribe(events[b.name].put)
    a.connect(b.name, b.address)
    b.connect(a.name, a.address)  # b has pinged a and been answered: up on both sides
    yield a, b, events
    a.stop()
    b.stop()


def _next_down(events: queue.Queue, timeout: float) -> NodeDown:
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, NodeDown):
            return event


@pytest.mark.parametrize("direction", ["out", "in"])
def test_a_one_way_cut_is_detected_by_both_sides_within_the_grace(pair, direction):
    a, b, events = pair
    cut_at = time.monotonic()
    a.partition(b.name, direction=direction)
    for node, peer in ((a, b.name), (b, a.name)):
        down = _next_down(events[node.name], timeout=DETECTED_WITHIN)
        assert down.name == peer
        assert down.reason in ("heartbeat_timeout", "connection_closed")
        assert time.monotonic() - cut_at < DETECTED_WITHIN
    # and neither side flaps back up while the cut lasts, though one still hears the other
    with pytest.raises(queue.Empty):
        events[a.name].get(timeout=GRACE * 2)
    assert a.peers()[b.name] == "down" and b.peers()[a.name] == "down"
    a.heal(b.name)
    assert events[a.name].get(timeout=5) == NodeUp(b.name)
    assert events[b.name].get(timeout=5) == NodeUp(a.name)


def test_a_node_hearing_a_peer_that_does_not_hear_it_fails_its_asks(pair):
    a, b, _ = pair
    b.register("echo", EchoActor.start())
    a.partition(b.name, direction="out")  # a's asks never arrive; b's pings still do
    future = a.ref("echo@peer2@proc").ask_future(Echo("lost"), timeout=30)
    with pytest.raises(NodeDownError):
        future.get(timeout=DETECTED_WITHIN)


# -- SIGSTOP / SIGCONT ---------------------------------------------------------------------------

_FROZEN = textwrap.dedent("""
    import json, sys
    from runtime_messages import EchoActor
    from wind_actors.log import configure_logging
    from wind_actors.runtime import Node
    configure_logging()  # to stderr: stdout carries the lines the test reads
    keys_dir, parent, parent_address, interval, misses = sys.argv[1:6]
    node = Node.start(name="peer2@proc", keys_dir=keys_dir, heartbeat_interval=float(interval),
                      heartbeat_misses=int(misses))
    node.register("echo", EchoActor.start())

    def say(kind, **data):
        sys.stdout.write(json.dumps(dict(kind=kind, **data)) + "\\n")
        sys.stdout.flush()

    node.subscribe(lambda e: say(type(e).__name__, peer=e.name, reason=getattr(e, "reason", None)))
    node.connect(parent, parent_address)
    node.monitor(node.ref("echo@" + parent), lambda d: say("Down", reason=str(d.reason)))
    node.ref("echo@" + parent).ask("sync")  # the MONITOR is in before the test freezes us
    say("ready", address=node.address)
    sys.stdin.read()
    node.stop()
    import os; os._exit(0)
""")


def _lines(proc: subprocess.Popen, until, timeout: float = 10.0) -> list[dict]:
    """Lines the child printed, read until ``until(line)`` holds."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = proc.stdout.readline()
        if not raw:
            break
        seen.append(json.loads(raw))
        if until(seen[-1]):
            return seen
    raise AssertionError(f"the child did not say it in time; it said {seen}")


def test_a_node_frozen_past_the_grace_learns_it_was_declared_lost_and_fires_its_monitors(
        keys_dir):
    parent = _node("test@local", keys_dir)
    parent.register("echo", EchoActor.start())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
               WIND_LOG_LEVEL="WARNING")
    child = subprocess.Popen([sys.executable, "-c", _FROZEN, str(keys_dir), parent.name,
                              parent.address, str(INTERVAL), str(MISSES)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready = _lines(child, lambda line: line["kind"] == "ready")[-1]
        events: queue.Queue = queue.Queue()
        parent.subscribe(events.put)
        parent.connect("peer2@proc", ready["address"])
        downs: queue.Queue = queue.Queue()
        parent.monitor(parent.ref("echo@peer2@proc"), downs.put)
        parent.ref("echo@peer2@proc").ask(Echo("sync"))

        child.send_signal(signal.SIGSTOP)
        assert _next_down(events, timeout=DETECTED_WITHIN) == NodeDown("peer2@proc",
                                                                        "heartbeat_timeout")
        assert downs.get(timeout=5).reason == supervisors.NOCONNECTION
        child.send_signal(signal.SIGCONT)

        said: list[dict] = []
        while not {"Down", "NodeDown"} <= {line["kind"] for line in said}:
            said += _lines(child, lambda line: line["kind"] in ("Down", "NodeDown"))
        by_kind = {line["kind"]: line for line in said}
        assert by_kind["NodeDown"]["peer"] == "test@local"
        assert by_kind["NodeDown"]["reason"] in ("heartbeat_timeout", "connection_closed")
        assert by_kind["Down"]["reason"] == supervisors.NOCONNECTION
        # and afterwards both sides agree the other is back
        assert events.get(timeout=5) == NodeUp("peer2@proc")
        _lines(child, lambda line: line["kind"] == "NodeUp" and line["peer"] == "test@local")
    finally:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait(timeout=10)
        child.stdin.close()
        child.stdout.close()
        parent.stop()


# -- the I/O thread ------------------------------------------------------------------------------


def test_a_handler_raising_an_unexpected_error_is_counted_and_the_node_serves_on(pair):
    a, b, _ = pair
    a.register("echo", EchoActor.start())
    real = a.inbound.on_frame
    failed = []

    def once(data, user_id):
        if not failed:
            failed.append(True)
            raise RuntimeError("injected: a handler bug")
        return real(data, user_id)

    a.inbound.on_frame = once
    wait_for(lambda: a.stats()["counters"].get("io_errors") == 1)
    assert b.ref("echo@test@local").ask(Echo("still here")) == Echo("still here")
    assert a.transport._thread.is_alive()


def _watched_peer(node, spawn):
    """A peer process with a monitor, a slow ask pending and subscribed events on ``node``."""
    peer = spawn("peer1@proc")
    node.connect(peer.name, peer.address)
    events: queue.Queue = queue.Queue()
    node.subscribe(events.put)
    downs: queue.Queue = queue.Queue()
    node.monitor(node.ref("echo@peer1@proc"), downs.put)
    node.ref("echo@peer1@proc").ask(Echo("sync"))
    slow = node.ref("echo@peer1@proc").ask_future(Slow(20), timeout=30)
    return events, downs, slow


def _stopped_loudly(node, events, downs, slow) -> None:
    assert events.get(timeout=5) == NodeDown("peer1@proc", "io_failed")
    assert downs.get(timeout=5).reason == supervisors.NOCONNECTION
    with pytest.raises(NodeDownError) as info:
        slow.get(timeout=5)
    assert info.value.context.get("reason") == "io_failed"
    wait_for(lambda: node._stopped)


def test_a_broken_inbox_stops_the_node_loudly(local_node, spawn):
    events, downs, slow = _watched_peer(local_node, spawn)
    transport = local_node.transport
    transport.call_soon(lambda: transport._inbox.close(0))  # on the thread owning it
    _stopped_loudly(local_node, events, downs, slow)


def test_an_io_loop_failing_turn_after_turn_stops_the_node_loudly(local_node, spawn,
                                                                  monkeypatch):
    events, downs, slow = _watched_peer(local_node, spawn)
    monkeypatch.setattr(transport_module, "_MAX_CONSECUTIVE_FAILURES", 3)

    def broken(now):
        raise RuntimeError("injected: every tick fails")

    local_node.inbound.on_tick = broken
    _stopped_loudly(local_node, events, downs, slow)
    assert local_node.stats()["counters"]["io_errors"] >= 3
