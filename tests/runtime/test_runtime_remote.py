"""Tell and ask between real OS processes over CURVE: replies, errors, refs in messages, FIFO."""

from __future__ import annotations

import threading

import pytest
from runtime_messages import CallMe, Dump, Echo, EchoActor, Seq, Slow

from wind_actors.errors import ActorError, AskTimeout, NodeDownError, NoSuchActor, WireError


@pytest.fixture
def peer(spawn, local_node):
    handle = spawn("peer1@proc")
    local_node.connect(handle.name, handle.address)
    return handle


def test_ask_returns_the_remote_actors_reply(local_node, peer):
    assert local_node.ref("echo@peer1@proc").ask(Echo("hello")) == Echo("hello")


def test_tell_reaches_a_remote_actor(local_node, peer):
    collector = local_node.ref("collector@peer1@proc")
    collector.tell(Seq("me", 1))
    collector.tell(Seq("me", 2))
    assert collector.ask(Dump()) == (("me", 1), ("me", 2))


def test_an_exception_in_the_remote_actor_is_raised_as_actor_error(local_node, peer):
    with pytest.raises(ActorError) as info:
        local_node.ref("echo@peer1@proc").ask(Echo("boom"))
    assert info.value.remote_type == "builtins.ValueError"
    assert "boom on purpose" in str(info.value)
    # the remote actor lives on (Pykka's contract for asks)
    assert local_node.ref("echo@peer1@proc").ask(Echo("still here")) == Echo("still here")


def test_asking_a_name_nobody_registered_raises_no_such_actor(local_node, peer):
    with pytest.raises(NoSuchActor, match="nobody"):
        local_node.ref("nobody@peer1@proc").ask(Echo("hi"))


def test_an_ask_times_out_and_its_late_reply_is_dropped(local_node, peer):
    echo = local_node.ref("echo@peer1@proc")
    with pytest.raises(AskTimeout):
        echo.ask(Slow(0.5), timeout=0.1)
    # the next ask gets its own reply, not the late "slept"
    assert echo.ask(Echo("next")) == Echo("next")
    assert local_node.stats()["counters"]["late_reply"] == 1


def test_a_ref_inside_a_message_lets_the_receiver_ask_the_sender(local_node, peer):
    local_node.register("echo", EchoActor.start())
    my_echo = local_node.ref("echo@test@local")
    answer = local_node.ref("caller@peer1@proc").ask(CallMe(my_echo, "called back"))
    assert answer == Echo("called back")


def test_an_unregistered_message_type_is_refused_before_sending(local_node, peer):
    class NotAMessage:
        pass

    with pytest.raises(WireError) as info:
        local_node.ref("echo@peer1@proc").tell(NotAMessage())
    assert info.value.reason == "unencodable"


def test_a_ref_to_an_unknown_node_fails_with_node_down(local_node):
    with pytest.raises(NodeDownError, match="unknown"):
        local_node.ref("echo@ghost@nowhere").ask(Echo("anyone?"))


def test_local_refs_behave_like_remote_ones(local_node):
    local_node.register("echo", EchoActor.start())
    echo = local_node.ref("echo@test@local")
    assert echo.ask(Echo("local")) == Echo("local")
    with pytest.raises(ActorError) as info:
        echo.ask(Echo("boom"))
    assert info.value.remote_type == "builtins.ValueError"
    with pytest.raises(NoSuchActor):
        local_node.ref("nobody@test@local").ask(Echo("x"))


def test_messages_from_each_sender_arrive_in_order(local_node, peer):
    collector = local_node.ref("collector@peer1@proc")
    count = 3000

    def send(sender: str) -> None:
        for n in range(count):
            collector.tell(Seq(sender, n))

    threads = [threading.Thread(target=send, args=(f"s{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = collector.ask(Dump(), timeout=10)
    for i in range(3):
        assert [n for s, n in seen if s == f"s{i}"] == list(range(count))
