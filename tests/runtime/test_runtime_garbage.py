"""Raw ZeroMQ sockets throw garbage at a node, which counts, warns, answers asks and serves on.

The raw sockets use a trusted CURVE key (``raw@test``) so the garbage passes authentication
and reaches the wire codec; the untrusted-key case is in test_runtime_security.py.
"""

from __future__ import annotations

import os

import msgpack
import pytest
import zmq
from runtime_support import RawPeer, wait_for
from runtime_messages import CallMe, Echo, EchoActor
from zmq.utils.monitor import recv_monitor_message

from wind_actors.runtime._wire import Kind


@pytest.fixture
def raw(local_node, keys_dir):
    peer = RawPeer(keys_dir, local_node.name, local_node.address)
    yield peer
    peer.close()


def _counters(node):
    return node.stats()["counters"]


def test_random_bytes_are_dropped_and_counted(local_node, raw):
    raw.push.send(os.urandom(200) + b"\xc1")  # 0xc1 is never valid msgpack
    wait_for(lambda: _counters(local_node).get("malformed", 0) >= 1)


def test_a_frame_of_another_wire_version_is_dropped_and_counted(local_node, raw):
    raw.push.send(raw.frame([Kind.TELL, "echo", b"\xc0"], version=99))
    wait_for(lambda: _counters(local_node).get("unknown_version", 0) == 1)


def test_an_ask_of_an_unknown_message_type_gets_an_error_reply(local_node, raw):
    local_node.register("echo", EchoActor.start())
    body = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["no.such.type", 1, []])))
    raw.push.send(raw.frame([Kind.ASK, "echo", 7, body]))
    (error,) = raw.answers()
    assert error[:3] == [Kind.ERROR, 7, "unknown_type"]
    assert _counters(local_node)["unknown_type"] == 1


def test_an_ask_to_a_nonexistent_actor_gets_an_error_reply(local_node, raw):
    body = msgpack.packb("hello?")
    raw.push.send(raw.frame([Kind.ASK, "ghost", 8, body]))
    (error,) = raw.answers()
    assert error[:3] == [Kind.ERROR, 8, "unknown_target"]
    assert b"ghost" in error[3]
    assert _counters(local_node)["unknown_target"] == 1


def test_an_unknown_envelope_kind_and_a_bad_layout_are_dropped(local_node, raw):
    raw.push.send(raw.frame([99, "x"], [Kind.TELL, 5, b""], ["not", "a", "kind"]))
    wait_for(lambda: _counters(local_node).get("unknown_kind", 0) == 1
             and _counters(local_node).get("malformed", 0) == 2)


def test_a_frame_claiming_another_nodes_name_is_dropped(local_node, raw):
    raw.push.send(raw.frame([Kind.TELL, "echo", msgpack.packb(1)], src="peer1@proc"))
    wait_for(lambda: _counters(local_node).get("spoofed", 0) == 1)


def test_a_frame_over_max_frame_bytes_is_dropped_and_counted(local_node, raw):
    size = local_node.config.max_frame_bytes + 100  # under ZMQ_MAXMSGSIZE's slack
    raw.push.send(raw.frame([Kind.TELL, "echo", b"x" * size]))
    wait_for(lambda: _counters(local_node).get("oversized", 0) == 1)


def test_a_100_mib_frame_is_cut_by_zeromq_counted_and_the_sender_can_reconnect(
        local_node, raw, spawn):
    local_node.register("echo", EchoActor.start())
    flood = raw.new_push()
    monitor = flood.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    flood.send(b"\x00" * (100 * 1024 * 1024), copy=False)
    events = []
    while zmq.EVENT_DISCONNECTED not in events:
        assert monitor.poll(20000), "ZeroMQ did not cut the 100 MiB frame"
        events.append(recv_monitor_message(monitor)["event"])
    # the cut shows in the node's stats (ZeroMQ does not tell the application why)
    wait_for(lambda: _counters(local_node).get("inbound_disconnected", 0) >= 1)

    # the same sender reconnects by itself and is served again
    while zmq.EVENT_HANDSHAKE_SUCCEEDED not in events[events.index(zmq.EVENT_DISCONNECTED):]:
        assert monitor.poll(20000), "the sender did not reconnect"
        events.append(recv_monitor_message(monitor)["event"])
    flood.send(raw.frame([Kind.ASK, "echo", 9, _body(Echo("again"))]))
    (reply,) = raw.answers()
    assert reply[:2] == [Kind.REPLY, 9]
    flood.disable_monitor()
    monitor.close(0)
    flood.close(0)

    # and the node serves other processes throughout
    peer = spawn("peer1@proc")
    local_node.connect(peer.name, peer.address)
    answer = local_node.ref("caller@peer1@proc").ask(CallMe(local_node.ref("echo@test@local"), "ok"))
    assert answer == Echo("ok")
    assert _counters(local_node).get("delivered", 0) >= 2


def _body(message) -> bytes:
    from wind_actors.runtime import Codec
    return Codec().encode(message)


def test_the_node_serves_another_process_throughout_a_garbage_storm(local_node, raw, spawn):
    local_node.register("echo", EchoActor.start())
    peer = spawn("peer1@proc")
    local_node.connect(peer.name, peer.address)
    caller = local_node.ref("caller@peer1@proc")
    my_echo = local_node.ref("echo@test@local")
    for i in range(20):
        raw.push.send(os.urandom(64))
        raw.push.send(raw.frame([Kind.ASK, "ghost", i, b"\xc0"]))
        assert caller.ask(CallMe(my_echo, f"round {i}")) == Echo(f"round {i}")
    # the raw frames come on their own connection: nothing orders them before the last answer
    wait_for(lambda: _counters(local_node).get("unknown_target", 0) == 20)
    assert _counters(local_node)["malformed"] >= 1
