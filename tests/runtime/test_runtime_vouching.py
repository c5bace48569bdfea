"""Agents trust each other only as the controller vouches (real nodes, real CURVE).

No agent's folder holds another agent's key. The controller tells each agent's overlay actor
``OverlayPeers`` (the peers it probes and those probing it, with their keys); the agents then
measure each other's RTT, an agent never told of is refused, a peer dropped from the set is
refused again, and nobody but the controller may send the set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from runtime_messages import Echo, EchoActor

from wind_actors.agent._overlay import OverlayActor, OverlayPeers, overlay_actor_name
from wind_actors.agent._probes import Peer, parse_peers
from wind_actors.errors import AskTimeout, NodeDownError, SecurityError
from wind_actors.keyring import Keyring
from wind_actors.runtime import AGENT, Identity, Node, TrustPolicy, generate_keys, load_keypair
from wind_actors.testing import wait_for

CONTROLLER = "controller@t"
AGENTS = ("agent@a", "agent@b", "agent@c")


@pytest.fixture
def world(tmp_path: Path):
    ring = Keyring(tmp_path / "keys")
    for name in (CONTROLLER, *AGENTS):
        ring.add(name)
    ring.publish()
    nodes = {n: Node.start(name=n, keys_dir=str(ring.trust_dir(n)), heartbeat_interval=0.1)
             for n in (CONTROLLER, *AGENTS)}
    actors = []
    for name in AGENTS:
        node = nodes[name]
        node.connect(CONTROLLER, nodes[CONTROLLER].address)
        node.register("echo", EchoActor.start())
        actors.append(OverlayActor.start(node, name.split("@")[1], CONTROLLER))
    yield nodes, ring
    for actor in actors:
        actor.stop()
    for node in nodes.values():
        node.stop()


def entry(nodes, name: str, probe: bool) -> dict:
    key = nodes[CONTROLLER].trust.public_key(name).decode()  # what the controller files
    data = {"site": name.split("@")[1], "key": key}
    return {**data, "endpoint": nodes[name].address} if probe else data


def tell_peers(nodes, to: str, probes=(), trusted=()) -> None:
    """The controller tells ``to``'s overlay actor its set."""
    ref = nodes[CONTROLLER].ref(f"{overlay_actor_name(to.split('@')[1])}@{to}")
    ref.tell(OverlayPeers({n: entry(nodes, n, True) for n in probes},
                          {n: entry(nodes, n, False) for n in trusted}))


def test_agents_with_no_agent_keys_measure_rtt_once_the_controller_vouches(world):
    nodes, ring = world
    for name in AGENTS:  # only the controller's key and its own are filed
        assert {p.name for p in ring.trust_dir(name).rglob("*.key")} == {f"{CONTROLLER}.key", f"{name}.key"}
    with pytest.raises(SecurityError):
        nodes["agent@a"].connect("agent@b", nodes["agent@b"].address, wait=False)
    tell_peers(nodes, "agent@b", trusted=["agent@a"])  # b is probed by a: trust, no connect
    tell_peers(nodes, "agent@a", probes=["agent@b"])
    wait_for("a's RTT to b", lambda: "agent@b" in nodes["agent@a"].peer_rtt_ms(), 10)
    wait_for("b's RTT to a", lambda: "agent@a" in nodes["agent@b"].peer_rtt_ms(), 10)
    assert nodes["agent@a"].trust.vouched() == {"agent@b": Identity("agent@b", AGENT, "b")}
    assert nodes["agent@a"].identity("agent@b") == Identity("agent@b", AGENT, "b")
    assert nodes["agent@b"].ref("echo@agent@a").ask(Echo("hi"), timeout=5) == Echo("hi")
    assert nodes["agent@a"].ref("echo@agent@b").ask(Echo("hi"), timeout=5) == Echo("hi")


def test_an_agent_never_told_of_is_refused(world, tmp_path: Path):
    nodes, ring = world
    tell_peers(nodes, "agent@b", trusted=["agent@a"])
    tell_peers(nodes, "agent@a", probes=["agent@b"])
    wait_for("a and b up", lambda: nodes["agent@a"].peers().get("agent@b") == "up", 10)
    # c knows a's public key (it is no secret) and files it, but a was never told of c
    intruder = nodes["agent@c"]
    folder = Path(intruder.config.keys_dir) / "agent" / "a"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent@a.key").write_bytes((ring.vault / "agent" / "a" / "agent@a.key").read_bytes())
    rejected = nodes["agent@a"].stats()["curve_rejected"]
    intruder.connect("agent@a", nodes["agent@a"].address, wait=False)
    with pytest.raises((AskTimeout, NodeDownError)):
        intruder.ref("echo@agent@a").ask(Echo("let me in"), timeout=1.5)
    wait_for("the CURVE refusal", lambda: nodes["agent@a"].stats()["curve_rejected"] > rejected, 5)
    assert "agent@c" not in nodes["agent@a"].peers()


def test_a_peer_dropped_from_the_set_is_refused_again(world):
    nodes, _ = world
    a, b = nodes["agent@a"], nodes["agent@b"]
    tell_peers(nodes, "agent@b", trusted=["agent@a"])
    tell_peers(nodes, "agent@a", probes=["agent@b"])
    wait_for("a and b up", lambda: a.peers().get("agent@b") == "up" and b.peers().get("agent@a") == "up", 10)
    tell_peers(nodes, "agent@a")  # b is no longer a's probe peer; b is not told (a stale b)
    wait_for("a forgets b", lambda: "agent@b" not in a.peers() and not a.trust.vouched(), 5)
    rejected = a.stats()["curve_rejected"]
    b.connect("agent@a", a.address, wait=False)  # b still trusts a and dials again
    with pytest.raises((AskTimeout, NodeDownError)):
        b.ref("echo@agent@a").ask(Echo("still friends?"), timeout=1.5)
    wait_for("the CURVE refusal", lambda: a.stats()["curve_rejected"] > rejected, 5)
    assert "agent@b" not in a.peers()
    with pytest.raises(SecurityError):  # nor can a reach b any more
        a.connect("agent@b", b.address, wait=False)


def test_frames_on_a_connection_whose_key_is_no_longer_trusted_are_dropped(world):
    nodes, _ = world
    a, b = nodes["agent@a"], nodes["agent@b"]
    tell_peers(nodes, "agent@b", trusted=["agent@a"])
    tell_peers(nodes, "agent@a", probes=["agent@b"])
    wait_for("a and b up", lambda: a.peers().get("agent@b") == "up" and b.peers().get("agent@a") == "up", 10)
    a.trust.vouch([])  # un-trusted behind the overlay actor's back: b's connection stays open
    wait_for("b's frames refused", lambda: a.stats()["counters"].get("untrusted_peer", 0) >= 1, 5)
    with pytest.raises((AskTimeout, NodeDownError)):
        b.ref("echo@agent@a").ask(Echo("anyone?"), timeout=1)


def test_only_the_controller_may_send_the_probe_set(world):
    nodes, _ = world
    a, b = nodes["agent@a"], nodes["agent@b"]
    tell_peers(nodes, "agent@b", trusted=["agent@a"])
    tell_peers(nodes, "agent@a", probes=["agent@b"])
    wait_for("a and b up", lambda: a.peers().get("agent@b") == "up", 10)
    before = a.stats()["counters"].get("forbidden", 0)
    # b, a trusted agent of a, tries to have a trust c (and forget b's rivals)
    forged = OverlayPeers({"agent@c": entry(nodes, "agent@c", True)}, {})
    b.ref(f"{overlay_actor_name('a')}@agent@a").tell(forged)
    wait_for("the refusal", lambda: a.stats()["counters"].get("forbidden", 0) > before, 5)
    assert set(a.trust.vouched()) == {"agent@b"}


def test_vouching_takes_agents_of_a_site_only_and_a_filed_key_wins(tmp_path: Path):
    generate_keys("agent@a", tmp_path, "agent", "a")
    generate_keys("controller@t", tmp_path, "controller")
    filed = load_keypair(tmp_path / "agent" / "a" / "agent@a.key_secret").public
    policy = TrustPolicy(tmp_path)
    other = zmq.curve_keypair()[0]
    generation = policy.generation
    refused = policy.vouch([
        (Identity("agent@b", AGENT, "b"), other),
        (Identity("ops@x", "operator"), zmq.curve_keypair()[0]),          # not an agent
        (Identity("agent@s", AGENT, None), zmq.curve_keypair()[0]),       # no site
        (Identity("controller@t", AGENT, "t"), zmq.curve_keypair()[0]),   # a filed name
        (Identity("agent@x", AGENT, "x"), filed),                         # a filed key
        (Identity("agent@y", AGENT, "y"), b"not-a-key"),
    ])
    assert set(refused) == {"ops@x", "agent@s", "controller@t", "agent@x", "agent@y"}
    assert "filed in keys_dir" in refused["controller@t"] and "agent@a" in refused["agent@x"]
    assert policy.generation > generation
    assert policy.identity_of(other) == Identity("agent@b", AGENT, "b")
    assert policy.public_key("agent@b") == other
    assert policy.identity_of_name("controller@t").role == "controller"  # filed wins
    policy.reload()
    assert set(policy.vouched()) == {"agent@b"}  # kept across reloads
    # a key filed later for a vouched name wins, and the vouched entry goes
    generate_keys("agent@b", tmp_path, "agent", "b")
    policy.reload()
    assert policy.vouched() == {} and policy.public_key("agent@b") != other
    generation = policy.generation
    policy.vouch([])
    assert policy.generation == generation  # nothing changed: no new generation
    with pytest.raises(SecurityError, match="at most"):
        policy.vouch([(Identity(f"agent@{i}", AGENT, str(i)), zmq.curve_keypair()[0]) for i in range(300)])


def test_a_malformed_peer_entry_is_refused_and_the_rest_taken():
    key = zmq.curve_keypair()[0].decode()
    peers, bad = parse_peers(
        {"agent@b": {"endpoint": "tcp://10.0.0.2:7000", "site": "b", "key": key},
         "agent@d": {"endpoint": "tcp://some.host:7000", "site": "d", "key": key},  # not literal
         "agent@e": {"site": "e", "key": key}},                                    # no endpoint
        {"agent@c": {"site": "c", "key": key}, "agent@f": {"key": key}, "agent@g": "junk"})
    assert peers == {"agent@b": Peer("b", key, "tcp://10.0.0.2:7000"), "agent@c": Peer("c", key, None)}
    assert set(bad) == {"agent@d", "agent@e", "agent@f", "agent@g"}
