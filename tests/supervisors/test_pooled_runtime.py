"""PooledActor on an ActorPool: one message at a time per actor, in order, on a bounded set of threads."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervisors import KILLED, SHUTDOWN, ActorPool, Down, PooledActor, blocking, kill, monitor
from supervisors._watch import watch_of


class Counter(PooledActor):
    """Records what it got, in order, and checks that no two workers run it at once."""

    def __init__(self, pool: ActorPool | str = "default") -> None:
        self.pool = pool  # type: ignore[misc]  # read by the inbox, set before Pykka builds it
        super().__init__()
        self.seen: list[Any] = []
        self.inside = 0
        self.overlaps = 0

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        try:
            if message == "crash":
                raise RuntimeError("crash on purpose")
            if isinstance(message, tuple) and message[0] == "block":
                with blocking():
                    message[1].wait()
                return None
            if message == "report":
                return list(self.seen), self.overlaps
            self.seen.append(message)
            return None
        finally:
            self.inside -= 1


def downs_of(ref: pykka.ActorRef[Any]) -> tuple[threading.Event, list[Down]]:
    got: list[Down] = []
    done = threading.Event()
    monitor(ref, lambda down: (got.append(down), done.set()))
    return done, got


def test_each_actor_gets_its_messages_in_order_and_never_on_two_workers_at_once() -> None:
    pool = ActorPool("fifo", parallelism=4, throughput=3)
    refs = [Counter.start(pool) for _ in range(50)]
    senders = [threading.Thread(target=lambda r=r: [r.tell(i) for i in range(200)]) for r in refs]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    for ref in refs:
        seen, overlaps = ref.ask("report")
        assert seen == list(range(200)) and overlaps == 0


def test_ten_thousand_actors_run_on_a_bounded_number_of_threads() -> None:
    before = threading.active_count()
    pool = ActorPool("many", parallelism=2, max_threads=4)
    refs = [Counter.start(pool) for _ in range(10_000)]
    futures = [ref.ask("report", block=False) for ref in refs]
    assert all(f.get(timeout=30) == ([], 0) for f in futures)
    assert threading.active_count() - before <= pool.max_threads
    assert pool.stats()["peak"] <= 4


def test_a_blocking_actor_does_not_starve_the_others() -> None:
    pool = ActorPool("starve", parallelism=1, max_threads=3)
    release = threading.Event()
    stuck, other = Counter.start(pool), Counter.start(pool)
    stuck.tell(("block", release))
    assert other.ask("report", timeout=5) == ([], 0)  # a spare worker ran it
    release.set()
    assert stuck.ask("report", timeout=5) == ([], 0)


def test_an_ask_between_pooled_actors_on_a_one_worker_pool_does_not_deadlock() -> None:
    pool = ActorPool("nested", parallelism=1, max_threads=2)

    class Asker(PooledActor):
        def __init__(self, target: pykka.ActorRef[Any]) -> None:
            self.pool = pool  # type: ignore[misc]
            super().__init__()
            self.target = target

        def on_receive(self, message: Any) -> Any:
            return self.target.ask("report", timeout=5)

    target = Counter.start(pool)
    assert Asker.start(target).ask("go", timeout=5) == ([], 0)


def test_a_crash_in_one_actor_does_not_kill_the_worker() -> None:
    pool = ActorPool("crash", parallelism=1, max_threads=1)
    victim, bystander = Counter.start(pool), Counter.start(pool)
    done, got = downs_of(victim)
    victim.tell("crash")
    assert done.wait(5) and isinstance(got[0].reason, RuntimeError)
    bystander.tell("after")
    assert bystander.ask("report", timeout=5) == (["after"], 0)
    assert pool.stats()["threads"] == 1


def test_stop_kill_and_exit_signals_reach_an_actor_with_messages_queued() -> None:
    pool = ActorPool("signals", parallelism=1, max_threads=1)
    release = threading.Event()
    gate = Counter.start(pool)
    gate.tell(("block", release))  # holds the only worker: everything below stays queued
    stopped, killed, signalled = Counter.start(pool), Counter.start(pool), Counter.start(pool)
    events = {name: downs_of(ref) for name, ref in
              (("stop", stopped), ("kill", killed), ("signal", signalled))}
    queued = killed.ask("never answered", block=False)
    stop_reply = stopped.stop(block=False)
    assert kill(killed) is True
    watch_of(signalled).stop_before_next_message(SHUTDOWN)
    release.set()
    assert stop_reply.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)
    reasons = {}
    for name, (done, got) in events.items():
        assert done.wait(5)
        reasons[name] = got[0].reason
    assert reasons == {"stop": "normal", "kill": KILLED, "signal": SHUTDOWN}
    with pytest.raises(pykka.ActorDeadError):
        stopped.ask("late", timeout=5)
