"""Test actors and waiting helpers shared by the supervisor tests."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pykka

from supervisors import ChildSpec, Down, WatchedActor, blocking, monitor, which_children
from wind_actors import testing


class Crash(Exception):
    """The failure test actors raise on purpose."""


class Journal:
    """A thread-safe record of what the test actors did, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, Any]] = []

    def add(self, what: str, who: Any) -> None:
        with self._lock:
            self.entries.append((what, who))

    def of(self, what: str) -> list[Any]:
        with self._lock:
            return [who for kind, who in self.entries if kind == what]


class Worker(WatchedActor):
    """Answers "ping"; "crash" raises; ("exit", reason) stops with reason;
    ("block", event) blocks until event is set."""

    use_daemon_thread = True

    def __init__(self, name: str = "w", journal: Journal | None = None, *args: Any,
                 stop_gate: threading.Event | None = None, fail_start: bool = False) -> None:
        super().__init__()
        self.name, self.journal, self.args = name, journal or Journal(), args
        self.stop_gate, self.fail_start = stop_gate, fail_start

    def on_start(self) -> None:
        if self.fail_start:
            raise Crash(f"{self.name} refuses to start")
        self.journal.add("start", self.name)

    def on_stop(self) -> None:
        if self.stop_gate is not None:
            with blocking():  # on a pool worker: let the pool run other actors meanwhile
                self.stop_gate.wait()
        self.journal.add("stop", self.name)

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return ("pong", self.name, self.args)
        if message == "crash":
            raise Crash(f"{self.name} crashed")
        if isinstance(message, tuple) and message[0] == "exit":
            self.stop_with(message[1])
            return None
        if isinstance(message, tuple) and message[0] == "block":
            with blocking():
                message[1].wait()
            return None
        return super().on_receive(message)


_ACTOR_OPTIONS = ("stop_gate", "fail_start")


def worker_spec(name: str, journal: Journal, **kw: Any) -> ChildSpec:
    """A ChildSpec for a Worker; ``stop_gate``/``fail_start`` go to the actor, the rest to the spec."""
    options = {k: kw.pop(k) for k in _ACTOR_OPTIONS if k in kw}
    return ChildSpec(id=name, start=partial(Worker.start, name, journal, **options), **kw)


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.002) -> Any:
    """:func:`wind_actors.testing.wait_for` with this folder's argument order."""
    return testing.wait_for("the condition", condition, timeout, interval)


class Watch:
    """Collect the Down of one actor through a callable monitor."""

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self._q: queue.Queue[Down] = queue.Queue()
        self.monitor_id = monitor(ref, self._q.put)

    def down(self, timeout: float = 5.0) -> Down:
        return self._q.get(timeout=timeout)


def child_ref(sup: pykka.ActorRef[Any], child_id: Any) -> pykka.ActorRef[Any] | None:
    return next(c.ref for c in which_children(sup) if c.id == child_id)


def crash_and_wait(sup: pykka.ActorRef[Any], child_id: Any, message: Any = "crash") -> Down:
    """Make a child exit and return its Down once the supervisor has handled it.

    The supervisor's own monitor was registered before ours, so its Down is in
    its mailbox before ours fires; the next ask is answered after it.
    """
    ref = child_ref(sup, child_id)
    assert ref is not None
    watch = Watch(ref)
    ref.tell(message)
    down = watch.down()
    which_children(sup)
    return down
