"""CURVE: only peers whose public key is in keys_dir get anything through; insecure is loud."""

from __future__ import annotations

import msgpack
import pytest
import structlog
import zmq
from runtime_support import wait_for
from runtime_messages import Echo, EchoActor

from wind_actors.errors import NodeDownError, SecurityError
from wind_actors.runtime import Node, generate_keys, load_keypair
from wind_actors.runtime._security import public_key_of
from wind_actors.runtime._wire import WIRE_VERSION, Kind


def test_a_peer_with_an_unknown_key_gets_no_frame_through_and_is_logged(local_node, keys_dir,
                                                                         tmp_path):
    local_node.register("echo", EchoActor.start())
    generate_keys("intruder@x", tmp_path / "intruder")
    keys = load_keypair(tmp_path / "intruder" / "intruder@x.key_secret")
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_publickey, sock.curve_secretkey = keys.public, keys.secret
        sock.curve_serverkey = public_key_of(local_node.name, keys_dir)
        with structlog.testing.capture_logs() as logs:
            sock.connect(local_node.address)
            frame = msgpack.packb([WIRE_VERSION, "intruder@x", "tcp://127.0.0.1:1",
                                   [[Kind.TELL, "echo", msgpack.packb("hi")]]])
            sock.send(frame)
            wait_for(lambda: local_node.stats()["curve_rejected"] >= 1)
        assert any(e["event"] == "peer with an untrusted CURVE key rejected" for e in logs)
    finally:
        ctx.destroy(linger=0)
    assert local_node.stats()["counters"].get("delivered", 0) == 0
    assert "intruder@x" not in local_node.peers()


def test_a_node_whose_key_is_not_trusted_cannot_connect(local_node, keys_dir, tmp_path):
    own = tmp_path / "intruder-keys"
    generate_keys("intruder@x", own)
    (own / "test@local.key").write_bytes((keys_dir / "test@local.key").read_bytes())
    intruder = Node.start(name="intruder@x", keys_dir=str(own))
    try:
        with pytest.raises(NodeDownError):
            intruder.connect(local_node.name, local_node.address, timeout=1.0)
    finally:
        intruder.stop()
    assert local_node.stats()["curve_rejected"] >= 1


def test_a_key_added_to_keys_dir_later_is_trusted_without_restart(local_node, keys_dir, tmp_path):
    own = tmp_path / "late-keys"
    generate_keys("late@x", own)
    (own / "test@local.key").write_bytes((keys_dir / "test@local.key").read_bytes())
    (keys_dir / "late@x.key").write_bytes((own / "late@x.key").read_bytes())
    local_node.register("echo", EchoActor.start())
    late = Node.start(name="late@x", keys_dir=str(own))
    try:
        late.connect(local_node.name, local_node.address)
        assert late.ref("echo@test@local").ask(Echo("hi")) == Echo("hi")
    finally:
        late.stop()


def test_a_node_without_its_secret_key_refuses_to_start(tmp_path):
    with pytest.raises(SecurityError, match="wind keys generate"):
        Node.start(name="nokeys@x", keys_dir=str(tmp_path))


def test_insecure_mode_is_warned_about_at_start():
    with structlog.testing.capture_logs() as logs:
        node = Node.start(name="plain@x", insecure=True)
        node.stop()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings and "WITHOUT CURVE" in warnings[0]["event"]


def test_insecure_nodes_talk_over_plain_tcp():
    a = Node.start(name="plain-a@x", insecure=True)
    b = Node.start(name="plain-b@x", insecure=True)
    try:
        b.register("echo", EchoActor.start())
        a.connect(b.name, b.address)
        assert a.ref("echo@plain-b@x").ask(Echo("plain")) == Echo("plain")
    finally:
        a.stop()
        b.stop()
