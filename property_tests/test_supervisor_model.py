"""A real supervisor and a pure OTP model, driven by the same random operations.

Hypothesis sends random sequences of child crashes (normal and abnormal exits),
terminate/restart/delete/start_child calls and clock advances to both, and
checks after every step that they agree on which children exist and run,
which were restarted (a restarted child has a new ActorRef) and whether the
supervisor gave up (exited with reason "shutdown").
"""

from __future__ import annotations

import queue
from functools import partial
from typing import Any

import pykka
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from supervisor_model import SupervisorModel

from supervisors import (
    SHUTDOWN,
    ChildError,
    ChildSpec,
    ManualClock,
    SupFlags,
    WatchedActor,
    delete_child,
    monitor,
    restart_child,
    start_child,
    start_supervisor,
    terminate_child,
    which_children,
)

IDS = ["a", "b", "c", "d", "e"]
RESTARTS = st.sampled_from(["permanent", "transient", "temporary"])


class Child(WatchedActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested by the model test")
        if message == "exit":
            self.stop_with("normal")
        return None


def spec(cid: str, restart: str) -> ChildSpec:
    return ChildSpec(id=cid, start=partial(Child.start), restart=restart, shutdown=2.0)


def down_queue(ref: pykka.ActorRef[Any]) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    monitor(ref, q.put)
    return q


class SupervisorAgainstModel(RuleBasedStateMachine):
    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        intensity=st.integers(min_value=0, max_value=3),
        period=st.sampled_from([1.0, 5.0, 10.0]),
        restarts=st.lists(RESTARTS, min_size=1, max_size=4),
    )
    def start(self, strategy: str, intensity: int, period: float, restarts: list[str]) -> None:
        self.clock = ManualClock()
        self.model = SupervisorModel(strategy, intensity, period)
        specs = []
        for cid, restart in zip(IDS, restarts, strict=False):
            specs.append(spec(cid, restart))
            self.model.start_child(cid, restart)
        self.sup = start_supervisor(SupFlags(strategy, intensity, period), specs, clock=self.clock)
        self.sup_down = down_queue(self.sup)
        self.seen: dict[str, tuple[int, pykka.ActorRef[Any] | None]] = {}
        self.compare()

    def teardown(self) -> None:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)

    # -- helpers -----------------------------------------------------------------

    def running(self) -> list[str]:
        return [c.id for c in self.model.children if c.running]

    def compare(self) -> None:
        if not self.model.alive:
            assert self.sup_down.get(timeout=10).reason == SHUTDOWN
            assert not self.sup.is_alive()
            return
        real = which_children(self.sup)[::-1]  # OTP lists the newest first; the model keeps start order
        assert [c.id for c in real] == [c.id for c in self.model.children]
        for info, child in zip(real, self.model.children, strict=True):
            assert (info.ref is not None) == child.running, (info, child)
            assert info.status == ("running" if child.running else "undefined")
            starts, ref = self.seen.get(child.id, (0, None))
            if child.running and child.starts == starts:
                assert info.ref is ref, f"{child.id} was restarted but the model says it was not"
            if child.running and child.starts != starts:
                assert info.ref is not ref, f"{child.id} was not restarted but the model says it was"
            self.seen[child.id] = (child.starts, info.ref)
        for gone in set(self.seen) - {c.id for c in self.model.children}:
            del self.seen[gone]

    def outcome(self, call: Any, *args: Any) -> str:
        try:
            call(self.sup, *args)
        except ChildError as exc:
            return exc.outcome.value
        return "ok"

    # -- rules -------------------------------------------------------------------

    # Rules have no preconditions (a filtered rule choice makes Hypothesis reject
    # most examples once the supervisor gave up); they do nothing when moot.

    @rule(data=st.data(), abnormal=st.booleans())
    def child_exits(self, data: st.DataObject, abnormal: bool) -> None:
        if not (self.model.alive and self.running()):
            return
        cid = data.draw(st.sampled_from(self.running()))
        ref = self.seen[cid][1]
        assert ref is not None
        down = down_queue(ref)
        ref.tell("crash" if abnormal else "exit")
        down.get(timeout=10)
        self.model.child_exit(cid, abnormal, self.clock.now())
        self.compare()

    @rule(cid=st.sampled_from(IDS))
    def terminate(self, cid: str) -> None:
        if not self.model.alive:
            return
        assert self.outcome(terminate_child, cid) == self.model.terminate_child(cid)
        self.compare()

    @rule(cid=st.sampled_from(IDS))
    def restart(self, cid: str) -> None:
        if not self.model.alive:
            return
        assert self.outcome(restart_child, cid) == self.model.restart_child(cid)
        self.compare()

    @rule(cid=st.sampled_from(IDS))
    def delete(self, cid: str) -> None:
        if not self.model.alive:
            return
        assert self.outcome(delete_child, cid) == self.model.delete_child(cid)
        self.compare()

    @rule(cid=st.sampled_from(IDS), restart=RESTARTS)
    def add(self, cid: str, restart: str) -> None:
        if not self.model.alive:
            return
        assert self.outcome(start_child, spec(cid, restart)) == self.model.start_child(cid, restart)
        self.compare()

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 6.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def gave_up_only_with_the_model(self) -> None:
        if hasattr(self, "sup") and self.model.alive:
            assert self.sup.is_alive()


SupervisorAgainstModel.TestCase.settings = settings(
    max_examples=250, stateful_step_count=25, deadline=None,
)
TestSupervisorAgainstModel = SupervisorAgainstModel.TestCase
