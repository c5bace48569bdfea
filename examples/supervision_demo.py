"""A supervision tree at work: crash, restart, intensity exceeded, escalation.

    wind (one_for_one, intensity 1)
    └── site-a (rest_for_one, intensity 1)      a supervisor
        ├── driver                               a worker
        └── vm-1                                 a worker

vm-1 crashes: site-a restarts it. It crashes again within the period: site-a
has had too many restarts, stops its children and exits with "shutdown"; wind
restarts the whole site-a subtree. When that happens once more, wind itself
gives up. The structlog reports tell the story.
"""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from supervisors import (
    ChildSpec,
    NoProcError,
    SupFlags,
    WatchedActor,
    monitor,
    start_supervisor,
    tree,
    which_children,
)
from wind_actors.log import configure_logging

log = structlog.get_logger("demo")


class Worker(WatchedActor):
    """A worker that crashes when told to."""

    use_daemon_thread = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.name}: the hypervisor reported the VM crashed")
        return "ok"


def site() -> Any:
    return start_supervisor(
        SupFlags(strategy="rest_for_one", intensity=1, period=5),
        [ChildSpec(id="driver", start=lambda: Worker.start("driver")),
         ChildSpec(id="vm-1", start=lambda: Worker.start("vm-1"))],
        name="site-a",
    )


def child(sup: Any, child_id: str) -> Any:
    return next(c.ref for c in which_children(sup) if c.id == child_id)


def crash(sup: Any, child_id: str) -> Any:
    """Crash a child and return its exit reason once its supervisor has reacted."""
    ref = child(sup, child_id)
    downs: queue.Queue = queue.Queue()
    monitor(ref, downs.put)
    ref.tell("crash")
    reason = downs.get(timeout=10).reason
    try:
        which_children(sup)  # answered only after the supervisor handled the exit
    except NoProcError:
        pass  # the supervisor gave up
    return reason


def print_tree(node: dict, indent: str = "") -> None:
    # stderr, like the log, so that the two stay in order
    print(f"{indent}{node['name']} ({node['strategy']}, intensity {node['intensity']})",
          file=sys.stderr, flush=True)
    for c in node["children"]:
        print(f"{indent}  - {c['id']}: {c['type']}, {c['status']}, restarts={c['restarts']}",
              file=sys.stderr, flush=True)
        if "tree" in c:
            print_tree(c["tree"], indent + "    ")


def main() -> int:
    configure_logging()
    top = start_supervisor(SupFlags(intensity=1, period=5),
                           [ChildSpec(id="site-a", start=site, type="supervisor")], name="wind")
    top_downs: queue.Queue = queue.Queue()
    monitor(top, top_downs.put)
    print_tree(tree(top))

    log.info("story", step="vm-1 crashes once: site-a restarts it")
    crash(child(top, "site-a"), "vm-1")

    log.info("story", step="vm-1 crashes again: site-a exceeds its intensity and escalates")
    sub = child(top, "site-a")
    sub_downs: queue.Queue = queue.Queue()
    monitor(sub, sub_downs.put)
    crash(sub, "vm-1")
    log.info("story", step="site-a exited", reason=sub_downs.get(timeout=10).reason)
    print_tree(tree(top))

    log.info("story", step="the new site-a fails the same way: wind gives up too")
    sub = child(top, "site-a")
    crash(sub, "vm-1")
    crash(sub, "vm-1")
    reason = top_downs.get(timeout=10).reason
    log.info("story", step="wind exited", reason=reason)
    return 0 if reason == "shutdown" else 1


if __name__ == "__main__":
    sys.exit(main())
