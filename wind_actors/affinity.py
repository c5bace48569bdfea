"""Pin a whole Wind process (every thread) to a set of CPUs: ``[node] cpus``.

Why a node may want it: Wind's actors are Python threads, and the GIL lets
only one of them run at a time, so spreading them over several CPUs buys
little; but every message between two actors wakes a thread, and on a
virtual machine waking a thread on *another* vCPU (one that went idle and
was halted by the hypervisor) costs several times a wake on the same CPU.
On the 2-vCPU machines Wind is developed on, a thread-to-thread round trip
takes about 55 us across vCPUs and 13 us on one (``bench/drivers.py``
measures both in each run). Pinning the node to one CPU is then the
cheapest way to make every ask faster. It is opt-in: a node whose time goes
into GIL-free C code in several threads at once (heavy CURVE traffic, many
real hypervisor calls in flight) may do better spread out; measure first.

This is what ``taskset -a -p`` or systemd's ``CPUAffinity=`` do, done by
the node itself so that its config file is enough. Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from wind_actors.errors import ConfigError

if TYPE_CHECKING:
    from wind_actors.config import NodeConfig

__all__ = ["allowed_cpus", "pin_process", "pin_node"]

_log = structlog.get_logger("wind.node")


def allowed_cpus() -> frozenset[int]:
    """The CPUs this (calling) thread may run on now."""
    return frozenset(os.sched_getaffinity(0))


def pin_process(cpus: Iterable[int]) -> frozenset[int]:
    """Restrict every thread of this process, and every thread it starts later, to ``cpus``.

    Threads inherit their creator's affinity, and every existing thread
    (``/proc/self/task``) is set too, so threads started before the call
    (libzmq's I/O threads, libvirt's event loop) follow as well.

    Args:
        cpus: CPU numbers of this machine (not empty).

    Returns:
        The calling thread's CPUs before the call (pass them back to undo).

    Raises:
        ConfigError: ``cpus`` is empty, names a CPU this machine does not have,
            or none of them is one this process may use (the message lists the
            machine's CPUs); nothing was changed.
    """
    wanted = frozenset(cpus)
    machine = frozenset(range(os.cpu_count() or 1))
    if not wanted or not wanted <= machine:
        raise _refused(wanted, machine)
    before = allowed_cpus()
    try:
        # This thread first: threads it starts from now on inherit the set.
        os.sched_setaffinity(0, wanted)
    except OSError as exc:  # EINVAL: none of them is in this process's cgroup cpuset
        raise _refused(wanted, machine, str(exc)) from None
    for tid in _threads():
        try:
            os.sched_setaffinity(tid, wanted)
        except ProcessLookupError:
            pass  # that thread ended between the listing and now
    return before


def pin_node(config: NodeConfig) -> None:
    """Apply a node's ``[node] cpus`` to this process (nothing when it is not set).

    Call it before starting the node, as ``wind node start``, ``wind agent`` and
    ``wind controller`` do.

    Raises:
        ConfigError: see :func:`pin_process`.
    """
    if config.cpus:
        before = pin_process(config.cpus)
        _log.info("node.pinned", node=config.name, cpus=sorted(config.cpus), before=sorted(before))


def _refused(wanted: frozenset[int], machine: frozenset[int], why: str = "") -> ConfigError:
    missing = sorted(wanted - machine)
    reason = (f"CPU {missing} does not exist here; " if missing else
              f"the system refused it ({why}); " if why else "")
    return ConfigError(f"[node] cpus = {sorted(wanted)} is not allowed; {reason}use a non-empty list "
                       f"of CPUs from {sorted(machine)}", section="node", field="cpus")


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # no /proc: only this thread could be pinned
        return []
