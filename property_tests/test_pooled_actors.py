"""Hypothesis: a set of pooled actors under random tells, asks and crashes.

Every message told to a live actor is handled exactly once and in the order sent; an ask
answers with everything that actor received before it; a crashed actor takes no more.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors import ActorPool, PooledActor, monitor

_POOL = ActorPool("property", parallelism=2, max_threads=4, throughput=2)


class Recorder(PooledActor):
    pool = _POOL

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        if message == "ask":
            return list(self.seen)
        self.seen.append(message)
        return None


ops = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["tell", "tell", "tell", "ask", "crash"])),
               max_size=60)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_pooled_actors_handle_each_message_once_in_order(script: list[tuple[int, str]]) -> None:
    refs = [Recorder.start() for _ in range(5)]
    sent: list[list[int]] = [[] for _ in refs]
    dead = [False] * len(refs)
    downs = [threading.Event() for _ in refs]
    for i, ref in enumerate(refs):
        monitor(ref, lambda _d, i=i: downs[i].set())
    asks = []
    for n, (i, op) in enumerate(script):
        if dead[i]:
            continue
        if op == "tell":
            refs[i].tell(n)
            sent[i].append(n)
        elif op == "ask":
            asks.append((refs[i].ask("ask", block=False), list(sent[i])))
        else:
            refs[i].tell("crash")
            dead[i] = True
    for future, expected in asks:
        assert future.get(timeout=10) == expected
    for i, ref in enumerate(refs):
        if dead[i]:
            assert downs[i].wait(10)
        else:
            assert ref.ask("ask", timeout=10) == sent[i]
            ref.stop()
    assert all(not r.is_alive() or not isinstance(r, pykka.ActorRef) for r in refs)
