"""A frame's return address is learned only when ZeroMQ can dial it without resolving a name.

ZeroMQ resolves host names synchronously on its one I/O thread, at every reconnect; a peer that
advertised slow-to-resolve names (the fuzzer found it with mutated addresses) made the node deaf.
"""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st
from runtime_messages import Echo, EchoActor
from runtime_support import RawPeer, wait_for

from wind_actors.runtime import Node
from wind_actors.runtime._endpoints import is_literal_endpoint
from wind_actors.runtime._wire import WIRE_VERSION, Kind


def test_literal_endpoints_are_learnable_and_names_are_not():
    for good in ("tcp://127.0.0.1:5000", "tcp://10.1.2.3:65535", "tcp://[::1]:7000",
                 "tcp://[fe80::1]:1", "ipc:///run/wind.sock"):
        assert is_literal_endpoint(good), good
    for bad in ("tcp://localhost:5000", "tcp://q27.0.8.1:45289", "tcp://127.0.0.!:45289",
                "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://::1:70",
                "tcp://[127.0.0.1]:80", "udp://127.0.0.1:80", "ipc://", "tcp://127.0.0.1:５",
                "tcp://127.0.0.1:80\n", "tcp://" + "1" * 300 + ":80", ""):
        assert not is_literal_endpoint(bad), bad


@given(st.text(max_size=60))
def test_any_text_is_judged_without_raising(text):
    assert is_literal_endpoint(text) in (True, False)
    assert is_literal_endpoint("tcp://" + text) in (True, False)


def test_a_frame_advertising_a_host_name_is_dropped_and_its_address_never_learned(keys_dir):
    node = Node.start(name="test@local", keys_dir=str(keys_dir))
    peer = RawPeer(keys_dir, node.name, node.address)
    try:
        node.register("echo", EchoActor.start())
        body = node.codec.encode(Echo("hi"))
        bad = [WIRE_VERSION, "raw@test", "tcp://slow.example:1", [[Kind.ASK, "echo", 1 << 41, body]]]
        peer.push.send(msgpack.packb(bad, use_bin_type=True))
        wait_for(lambda: node.stats()["counters"].get("bad_address") == 1)
        assert node._addresses.get("raw@test") is None
        peer.push.send(peer.frame([Kind.ASK, "echo", 1 << 42, body]))  # its real address
        reply = peer.next_envelope(Kind.REPLY)
        assert reply[1] == 1 << 42 and node._addresses["raw@test"] == peer.address
    finally:
        peer.close()
        node.stop()
