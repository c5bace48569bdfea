"""Stopping children the OTP way: ask politely, wait, then give up on them.

A Python thread cannot be killed. "Killing" an actor here means abandoning it:
it is marked dead at once (monitors and links see reason "killed"), it is
removed from Pykka's registry, its inbox is closed (``tell`` raises
ActorDeadError, queued ``ask`` s get ActorDeadError), and it runs no further
handler or hook. The call it is stuck in, if any, keeps running in its thread
until it returns by itself; nobody waits for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka

from supervisors._reasons import KILLED, SHUTDOWN
from supervisors._watch import Down, demonitor, monitor, watch_of

__all__ = ["kill", "shutdown_many"]


def kill(ref: pykka.ActorRef[Any]) -> bool:
    """Abandon an actor now (brutal_kill). Returns False if it was already dead."""
    return watch_of(ref).kill()


def shutdown_many(refs: list[pykka.ActorRef[Any]], shutdown: float | str) -> list[Any]:
    """Stop actors together and return their exit reasons, in the same order.

    Args:
        refs: WatchedActor refs.
        shutdown: "brutal_kill" (abandon at once), "infinity" (wait for ever),
            or seconds to wait after the "shutdown" signal before abandoning.

    Returns:
        Each actor's exit reason: "shutdown" when it obeyed, "killed" when it was
        abandoned, or whatever it died of meanwhile ("noproc" if already gone).
    """
    reasons: list[Any] = [None] * len(refs)
    done = [threading.Event() for _ in refs]
    mids = []
    for i, ref in enumerate(refs):
        def record(down: Down, i: int = i) -> None:
            reasons[i] = down.reason
            done[i].set()
        mids.append(monitor(ref, record))
    if shutdown == "brutal_kill":
        for ref in refs:
            kill(ref)
    else:
        for ref in refs:
            watch_of(ref).stop_before_next_message(SHUTDOWN)
        deadline = None if shutdown == "infinity" else time.monotonic() + float(shutdown)
        for i, ref in enumerate(refs):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not done[i].wait(remaining):
                kill(ref)
    for i, mid in enumerate(mids):
        demonitor(mid)
        done[i].wait()  # kill() delivers synchronously; this never blocks for long
        if reasons[i] is None:  # pragma: no cover - defensive
            reasons[i] = KILLED
    return reasons
