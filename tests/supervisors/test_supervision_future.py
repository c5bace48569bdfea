"""LatchFuture, the reply future of every WatchedActor's ask: Pykka's future contract on one lock."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest

from supervisors import LatchFuture, WatchedActor


def test_a_latch_future_hands_over_a_value_an_exception_or_a_timeout() -> None:
    f: LatchFuture[int] = LatchFuture()
    with pytest.raises(pykka.Timeout):
        f.get(timeout=0.01)
    f.set(7)
    assert f.get() == 7 and f.get(timeout=0) == 7
    with pytest.raises(queue.Full):
        f.set(8)
    g: LatchFuture[int] = LatchFuture()
    try:
        raise KeyError("boom")
    except KeyError:
        g.set_exception()
    with pytest.raises(KeyError, match="boom") as raised:
        g.get()
    assert raised.traceback[-1].name == "test_a_latch_future_hands_over_a_value_an_exception_or_a_timeout"


def test_an_exception_set_outside_an_except_block_still_fails_the_waiter_clearly() -> None:
    f: LatchFuture[int] = LatchFuture()
    f.set_exception()
    with pytest.raises(RuntimeError, match="no exception to set"):
        f.get(timeout=1)


def test_latch_futures_compose_like_pykka_futures() -> None:
    a: LatchFuture[int] = LatchFuture()
    b: LatchFuture[int] = LatchFuture()
    doubled = a.map(lambda v: v * 2)
    both = a.join(b)
    a.set(2)
    b.set(3)
    assert doubled.get(timeout=1) == 4
    assert both.get(timeout=1) == [2, 3]
    assert pykka.get_all([a, b], timeout=1) == [2, 3]


def test_of_racing_completers_exactly_one_wins_and_every_waiter_sees_its_value() -> None:
    f: LatchFuture[int] = LatchFuture()
    seen: list[int] = []
    waiters = [threading.Thread(target=lambda: seen.append(f.get(timeout=5))) for _ in range(4)]
    for w in waiters:
        w.start()
    wins: list[int] = []
    go = threading.Barrier(8)

    def complete(i: int) -> None:
        go.wait()
        try:
            f.set(i)
            wins.append(i)
        except queue.Full:
            pass

    completers = [threading.Thread(target=complete, args=(i,)) for i in range(8)]
    for c in completers:
        c.start()
    for t in completers + waiters:
        t.join(timeout=5)
    assert len(wins) == 1 and seen == wins * 4


class _Echo(WatchedActor):
    def on_receive(self, message: object) -> object:
        if message == "fail":
            raise ValueError("refused")
        return message


def test_every_watched_actor_answers_asks_with_latch_futures() -> None:
    ref = _Echo.start()
    try:
        future = ref.ask("hi", block=False)
        assert isinstance(future, LatchFuture) and future.get(timeout=5) == "hi"
        with pytest.raises(ValueError, match="refused"):
            ref.ask("fail", timeout=5)
    finally:
        ref.stop()
