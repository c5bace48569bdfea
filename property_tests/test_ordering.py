"""Hypothesis stateful: FIFO per sender-receiver pair under random interleavings of senders.

Three in-process nodes (plain TCP, to keep examples fast; CURVE does not change ordering):
senders on ``a`` and ``c`` and a local sender on ``b`` tell numbered messages to a collector
on ``b`` in an order Hypothesis chooses, in bursts the I/O threads batch. Whatever the
interleaving, each sender's messages must arrive complete and in order.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pykka
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import supervisors
from wind_actors.runtime import Node, message


@message("prop.ordering.seq", version=1)
@dataclasses.dataclass(frozen=True)
class Seq:
    sender: str
    n: int


@message("prop.ordering.dump", version=1)
@dataclasses.dataclass(frozen=True)
class Dump:
    pass


class Collector(supervisors.WatchedActor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def on_receive(self, msg: Any) -> Any:
        if isinstance(msg, Seq):
            self.seen.append((msg.sender, msg.n))
        elif isinstance(msg, Dump):
            return tuple(self.seen)
        return None


SENDERS = ("a1", "a2", "c1", "b1")


class OrderingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.nodes = {n: Node.start(name=f"{n}@prop", insecure=True) for n in "abc"}
        self.nodes["b"].register("collector", Collector.start())
        for n in "ac":
            self.nodes[n].connect("b@prop", self.nodes["b"].address)
        self.sent = {s: 0 for s in SENDERS}

    def _ref(self, sender: str):
        return self.nodes[sender[0]].ref("collector@b@prop")

    @rule(sender=st.sampled_from(SENDERS), burst=st.integers(1, 60))
    def send_burst(self, sender: str, burst: int) -> None:
        ref = self._ref(sender)
        for _ in range(burst):
            ref.tell(Seq(sender, self.sent[sender]))
            self.sent[sender] += 1

    @rule(first=st.sampled_from(SENDERS), second=st.sampled_from(SENDERS), n=st.integers(1, 20))
    def interleave(self, first: str, second: str, n: int) -> None:
        for _ in range(n):
            for sender in (first, second):
                self._ref(sender).tell(Seq(sender, self.sent[sender]))
                self.sent[sender] += 1

    @invariant()
    def each_sender_is_a_prefix_in_order(self) -> None:
        seen = self._ref("a1").ask(Dump(), timeout=10)
        for sender in SENDERS:
            got = [n for s, n in seen if s == sender]
            assert got == list(range(len(got))), f"{sender} out of order: {got[:20]}"
            assert len(got) <= self.sent[sender]

    def teardown(self) -> None:
        try:
            total = sum(self.sent.values())
            deadline = time.monotonic() + 10
            seen: tuple = ()
            while time.monotonic() < deadline:
                seen = self._ref("b1").ask(Dump(), timeout=10)
                if len(seen) == total:
                    break
                time.sleep(0.01)  # polling the collector until everything sent has arrived
            for sender in SENDERS:
                assert [n for s, n in seen if s == sender] == list(range(self.sent[sender]))
        finally:
            for node in self.nodes.values():
                node.stop()
            pykka.ActorRegistry.stop_all()


OrderingMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=15,
                                             deadline=None)
TestOrdering = OrderingMachine.TestCase
