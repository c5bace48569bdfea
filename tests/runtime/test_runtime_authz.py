"""Authorization by authenticated identity: roles from trust folders, rules per message type,
access per actor, replies and DOWNs only from the node that was asked (real nodes, real CURVE).

Each attack is a test: it is refused, counted, and nothing reaches the actor.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest
from runtime_messages import Echo, EchoActor
from runtime_support import RawPeer

import supervisors
from wind_actors.errors import Forbidden
from wind_actors.keyring import Keyring
from wind_actors.runtime import (AGENT, CLIENT, CONTROLLER, LOCAL, OPEN, SYSTEM, Identity, Node,
                                 TrustPolicy, allow, generate_keys, load_keypair, message, rule_of,
                                 rules)
from wind_actors.runtime._authz import DEPENDS, check_message, check_watch, type_verdict
from wind_actors.runtime._replies import ReplyFuture
from wind_actors.runtime._wire import Kind
from wind_actors.testing import wait_for


@allow(AGENT, scope_field="site")
@message("test.authz.report", version=1)
@dataclasses.dataclass(frozen=True)
class Report:
    site: str


@allow(CONTROLLER)
@message("test.authz.command", version=1)
@dataclasses.dataclass(frozen=True)
class Command:
    what: str


class Recorder(supervisors.WatchedActor):
    """Records (message, sender) of everything it is sent; answers asks with 'ok'."""

    def __init__(self, seen: queue.Queue[Any]) -> None:
        super().__init__()
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        self.seen.put((message, self.sender))
        return "ok"


# -- the pure rules ---------------------------------------------------------------------------------

AGENT_A = Identity("agent@a", AGENT, "a")
CLIENT_X = Identity("client@x", CLIENT, "x")
THE_CONTROLLER = Identity("controller@t", CONTROLLER)


def test_an_agent_may_report_for_its_own_site_only():
    assert check_message(AGENT_A, Report("a"), SYSTEM) is None
    why = check_message(AGENT_A, Report("b"), SYSTEM)
    assert "names site 'b'" in why and "only speak for site 'a'" in why


def test_a_role_not_in_a_rule_is_refused_with_what_is_allowed():
    why = check_message(CLIENT_X, Command("x"), OPEN)
    assert "may be sent by controller" in why and "client of tenant x (client@x)" in why


def test_a_system_actor_refuses_messages_that_have_no_rule_but_an_open_one_takes_them():
    assert "no permission rule" in check_message(THE_CONTROLLER, Echo("hi"), SYSTEM)
    assert check_message(CLIENT_X, Echo("hi"), OPEN) is None


def test_what_this_process_sends_itself_is_always_allowed():
    assert check_message(LOCAL, Command("x"), SYSTEM) is None
    assert check_watch(LOCAL, "link", frozenset()) is None


def test_monitor_and_link_follow_the_actors_access():
    assert check_watch(THE_CONTROLLER, "monitor", SYSTEM.monitor) is None
    assert "may not monitor" in check_watch(CLIENT_X, "monitor", SYSTEM.monitor)
    assert "allowed: no remote node" in check_watch(THE_CONTROLLER, "link", SYSTEM.link)
    assert check_watch(CLIENT_X, "link", OPEN.link) is None


def test_a_rule_with_an_unknown_role_or_field_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown roles"):
        allow("admin")
    with pytest.raises(ValueError, match="no field 'tenant'"):
        allow(CLIENT, scope_field="tenant")(Command)


def test_every_wind_message_type_has_a_permission_rule():
    import wind_actors.agent._overlay  # noqa: F401 - registers the overlay's messages
    import wind_actors.protocol  # noqa: F401
    from wind_actors.runtime import registered_types

    wind = [t.cls for t in registered_types() if t.tag.startswith("wind.")]
    assert len(wind) >= 16
    assert [c.__qualname__ for c in wind if c not in rules()] == []


# -- the trust folders ------------------------------------------------------------------------------


def test_the_folder_a_key_is_filed_in_is_its_role(tmp_path: Path):
    for name, role, scope in [("controller@t", "controller", None), ("agent@a", "agent", "a"),
                              ("client@x", "client", "x"), ("ops@t", "operator", None), ("p@q", "peer", None)]:
        generate_keys(name, tmp_path, role, scope)
    policy = TrustPolicy(tmp_path)
    assert policy.identity_of_name("agent@a") == AGENT_A
    assert policy.identity_of_name("client@x") == CLIENT_X
    assert policy.identity_of_name("ops@t").role == "operator"
    assert policy.identity_of_name("p@q").role == "peer"
    public = load_keypair(tmp_path / "agent" / "a" / "agent@a.key_secret").public
    assert policy.identity_of(public) == AGENT_A


def test_a_node_filed_under_two_roles_is_trusted_under_none(tmp_path: Path):
    generate_keys("agent@a", tmp_path, "agent", "a")
    (tmp_path / "controller").mkdir()
    (tmp_path / "controller" / "agent@a.key").write_bytes(
        (tmp_path / "agent" / "a" / "agent@a.key").read_bytes())
    assert TrustPolicy(tmp_path).identity_of_name("agent@a") is None


def test_an_agents_trust_folder_holds_no_client_key(tmp_path: Path):
    ring = Keyring(tmp_path)
    for name in ("controller@t", "agent@a", "agent@b", "client@x", "operator@t"):
        ring.add(name)
    ring.publish()
    agent = {p.name for p in ring.trust_dir("agent@a").rglob("*.key")}
    assert agent == {"controller@t.key", "agent@a.key"}  # other agents are vouched, never filed
    client = {p.name for p in ring.trust_dir("client@x").rglob("*.key")}
    assert client == {"controller@t.key", "client@x.key"}
    controller = TrustPolicy(ring.trust_dir("controller@t"))
    assert controller.identity_of_name("client@x") == CLIENT_X
    assert controller.identity_of_name("operator@t").role == "operator"


# -- real nodes -------------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path):
    """A controller-role node with a SYSTEM recorder and an OPEN echo, and three other nodes."""
    ring = Keyring(tmp_path / "keys")
    names = ("controller@t", "agent@a", "client@x", "raw@test")
    for name in names:
        ring.add(name)
    ring.add("peer@p", "peer")
    ring.publish()
    # plain peers are not part of a Wind deployment's trust; this world lets them meet the
    # controller-role node so that what a plain peer may do there can be tested
    for peer in ("peer@p", "raw@test"):
        shutil.copy(ring.vault / f"{peer}.key", ring.trust_dir("controller@t") / f"{peer}.key")
        (ring.trust_dir(peer) / "controller").mkdir(exist_ok=True)
        shutil.copy(ring.vault / "controller" / "controller@t.key",
                    ring.trust_dir(peer) / "controller" / "controller@t.key")
    nodes = {n: Node.start(name=n, keys_dir=str(ring.trust_dir(n))) for n in names[:3]}
    nodes["peer@p"] = Node.start(name="peer@p", keys_dir=str(ring.trust_dir("peer@p")))
    seen: queue.Queue[Any] = queue.Queue()
    target = nodes["controller@t"]
    target.register("svc", Recorder.start(seen), access=SYSTEM)
    target.register("echo", EchoActor.start())
    for name, node in nodes.items():
        if name != "controller@t":
            node.connect("controller@t", target.address)
    yield nodes, seen, ring
    for node in nodes.values():
        node.stop()
    supervisors_stop_all()


def supervisors_stop_all() -> None:
    import pykka
    pykka.ActorRegistry.stop_all()


def _forbidden(node: Node) -> int:
    return node.stats()["counters"].get("forbidden", 0)


def test_the_actor_sees_the_authenticated_sender_of_an_allowed_message(world):
    nodes, seen, _ = world
    assert nodes["agent@a"].ref("svc@controller@t").ask(Report("a"), timeout=5) == "ok"
    message, sender = seen.get(timeout=5)
    assert message == Report("a") and sender == AGENT_A


def test_an_agent_speaking_for_another_site_is_refused_and_counted(world):
    nodes, seen, _ = world
    target = nodes["controller@t"]
    nodes["agent@a"].ref("svc@controller@t").tell(Report("b"))
    wait_for("the refusal", lambda: _forbidden(target) >= 1, 5)
    assert nodes["agent@a"].ref("svc@controller@t").ask(Report("a"), timeout=5) == "ok"
    assert seen.get(timeout=5)[0] == Report("a")  # the forged one never arrived before it
    assert seen.empty()


def test_tells_batched_into_frames_are_each_checked_for_their_own_scope(world):
    """The runtime decides once per frame and message type, except where a rule reads a field:
    tells sent back to back (so the transport packs many into one frame) are each checked."""
    nodes, seen, _ = world
    target, svc = nodes["controller@t"], nodes["agent@a"].ref("svc@controller@t")
    for i in range(200):
        svc.tell(Report("a") if i % 3 else Report("b"))
        if i % 50 == 0:
            svc.tell(Command("not an agent's to send"))
    assert svc.ask(Report("a"), timeout=5) == "ok"
    delivered = [seen.get(timeout=5)[0] for _ in range(200 - 67 + 1)]
    assert delivered == [Report("a")] * (200 - 67 + 1) and seen.empty()
    assert _forbidden(target) == 67 + 4


def test_the_per_type_verdict_agrees_with_the_per_message_check():
    for sender in (AGENT_A, CLIENT_X, THE_CONTROLLER, LOCAL, Identity("p@p", "peer")):
        for message in (Report("a"), Command("x"), Echo("hi")):
            for access in (OPEN, SYSTEM):
                verdict = type_verdict(sender, type(message), access)
                if verdict is DEPENDS:
                    assert rule_of(type(message)).scope_field is not None
                else:
                    assert verdict == check_message(sender, message, access)


def test_a_client_asking_for_a_controller_command_gets_forbidden(world):
    nodes, seen, _ = world
    with pytest.raises(Forbidden, match="may be sent by controller"):
        nodes["client@x"].ref("svc@controller@t").ask(Command("stop everything"), timeout=5)
    assert seen.empty()


def test_plain_data_never_reaches_a_system_actor_but_reaches_an_open_one(world):
    nodes, seen, _ = world
    with pytest.raises(Forbidden, match="no permission rule"):
        nodes["peer@p"].ref("svc@controller@t").ask({"any": "thing"}, timeout=5)
    assert nodes["peer@p"].ref("echo@controller@t").ask(Echo("hi"), timeout=5) == Echo("hi")
    assert seen.empty()


def test_a_client_may_not_monitor_a_system_actor(world):
    nodes, _, _ = world
    downs: queue.Queue[Any] = queue.Queue()
    client = nodes["client@x"]
    client.monitor(client.ref("svc@controller@t"), downs.put)
    assert downs.get(timeout=5).reason == "forbidden"
    assert nodes["controller@t"].stats()["monitors"]["incoming"] == 0


def test_a_link_from_a_client_can_never_stop_a_system_actor(world):
    nodes, seen, _ = world
    client, target = nodes["client@x"], nodes["controller@t"]
    exits: queue.Queue[Any] = queue.Queue()

    class Doomed(supervisors.WatchedActor):
        trap_exits = True

        def on_receive(self, message: Any) -> Any:
            exits.put(message)
            if message == "die":
                raise RuntimeError("the linked client actor dies")

    doomed = Doomed.start()
    client.link(doomed, client.ref("svc@controller@t"))
    exit_signal = exits.get(timeout=5)  # our half watched svc, which may not be watched by us
    assert isinstance(exit_signal, supervisors.Exit) and exit_signal.reason == "forbidden"
    wait_for("the refused link", lambda: _forbidden(target) >= 2, 5)  # the LINK and the MONITOR
    doomed.tell("die")
    wait_for("the client actor to die", lambda: supervisors.has_exited(doomed), 5)
    assert target.whereis("svc") is not None
    assert nodes["agent@a"].ref("svc@controller@t").ask(Report("a"), timeout=5) == "ok"


@pytest.fixture
def raw(world):
    nodes, _, ring = world
    target = nodes["controller@t"]
    peer = RawPeer(ring.trust_dir("raw@test"), target.name, target.address)
    yield peer
    peer.close()


class Gate(supervisors.WatchedActor):
    """Answers an ask only once ``release`` is set, so a forged reply has time to arrive first."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.release.wait(10)
        return "the real answer"


def test_a_reply_from_a_node_that_was_not_asked_is_dropped_and_the_real_one_still_lands(world, raw):
    nodes, _, _ = world
    asker, release = nodes["controller@t"], threading.Event()
    nodes["agent@a"].register("gate", Gate.start(release))
    future = asker.ask_future(asker.ref("gate@agent@a"), Echo("q"), timeout=10)
    corr = wait_for("the pending ask", lambda: next(iter(asker.pending._entries), None), 5)
    raw.push.send(raw.frame([Kind.REPLY, corr, msgpack.packb("forged", use_bin_type=True)]))
    wait_for("the forged reply to be dropped",
             lambda: asker.stats()["counters"].get("forged_reply", 0) >= 1, 5)
    release.set()
    assert future.get(timeout=10) == "the real answer"


def test_correlation_ids_are_not_a_counter(world):
    nodes, _, _ = world
    pending = nodes["controller@t"].pending
    ids = {pending.add(ReplyFuture("nobody@x")) for _ in range(100)}
    assert len(ids) == 100 and max(ids) > 2**40
    assert sorted(ids) != list(range(min(ids), min(ids) + 100))


def test_a_down_from_a_node_that_does_not_hold_the_actor_is_dropped(world, raw):
    nodes, _, _ = world
    watcher, downs = nodes["controller@t"], queue.Queue()
    actor = EchoActor.start()
    nodes["agent@a"].register("watched", actor)
    watcher.monitor(watcher.ref("watched@agent@a"), downs.put)
    wire_id = wait_for("the monitor", lambda: next(iter(watcher.monitors._out), None), 5)
    raw.push.send(raw.frame([Kind.DOWN, wire_id, msgpack.packb("forged", use_bin_type=True)]))
    wait_for("the forged DOWN to be dropped",
             lambda: watcher.stats()["counters"].get("forged_down", 0) >= 1, 5)
    assert downs.empty()
    actor.stop()
    assert downs.get(timeout=5).reason == "normal"


def test_a_down_whose_reason_does_not_decode_still_fires_the_monitor(world, raw):
    nodes, _, ring = world
    watcher, downs = nodes["controller@t"], queue.Queue()
    watcher.connect("raw@test", raw.address, wait=False)
    watcher.monitor(watcher.ref("thing@raw@test"), downs.put)
    monitor = raw.next_envelope(Kind.MONITOR)
    raw.push.send(raw.frame([Kind.DOWN, monitor[1], b"\xc1 not msgpack"]))
    assert downs.get(timeout=5).reason == "undecodable"
