"""A process whose root supervisor gives up exits non-zero instead of living on with no tree."""

from __future__ import annotations

import threading
from typing import Any

import supervisors
from supervisors import ChildSpec, SupFlags, WatchedActor, start_supervisor
from wind_actors.agent._agent import EXIT_ROOT_GAVE_UP, _serve
from wind_actors.config import NodeConfig
from wind_actors.testing import wait_for


class Fragile(WatchedActor):
    def on_receive(self, message: Any) -> Any:
        raise RuntimeError("crash on purpose")


class Service:
    """What ``wind agent`` and ``wind controller`` serve: something with a root supervisor."""

    def __init__(self, flags: SupFlags) -> None:
        self.supervisor = start_supervisor(flags, [ChildSpec(id="fragile", start=Fragile.start)])
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        self.supervisor.stop()


def _serve_in_thread(flags: SupFlags) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    result: dict[str, Any] = {}
    ready, stop = threading.Event(), threading.Event()

    def start(node: Any) -> Service:
        result["service"] = Service(flags)
        return result["service"]

    def run() -> None:
        result["code"] = _serve(NodeConfig(name="svc@test", insecure=True), start, ready, stop)

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(10)
    return thread, result, stop


def test_a_root_supervisor_that_gives_up_makes_the_process_exit_with_code_70():
    thread, result, _ = _serve_in_thread(SupFlags(intensity=0, period=5.0))
    child = supervisors.which_children(result["service"].supervisor)[0].ref
    child.tell("crash")  # one crash is over an intensity of 0: the root gives up
    thread.join(10)
    assert not thread.is_alive() and result["code"] == EXIT_ROOT_GAVE_UP == 70
    assert not result["service"].stopped  # nothing left to stop


def test_a_stop_asked_for_is_a_clean_exit_with_code_0():
    thread, result, stop = _serve_in_thread(SupFlags(intensity=3, period=5.0))
    stop.set()
    thread.join(10)
    assert result["code"] == 0 and result["service"].stopped
    wait_for("the tree to be gone", lambda: supervisors.has_exited(result["service"].supervisor), 5)
