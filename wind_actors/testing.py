"""Test support shipped with Wind, for its own suite and for services that embed it.

Tests synchronize on conditions, never on fixed sleeps: :func:`wait_for` polls a condition
with a deadline and returns the first truthy value it produced. For whole clusters to drive
under faults (SIGKILL a site, freeze one, kill a VM behind Wind's back), see
:class:`wind_actors.cluster.Cluster` (in-process) and :class:`wind_actors.cluster.ProcessCluster`
(separate OS processes); for partitions between nodes, ``Node.partition`` / ``Node.heal``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(what: str, condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Args:
        what: what is awaited, for the error message.
        condition: called repeatedly, from this thread.
        timeout: seconds before giving up.
        interval: seconds between polls (a polling interval, not a synchronization).

    Raises:
        TimeoutError: ``condition`` stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
