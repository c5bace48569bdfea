"""Real faults on real QEMU under libvirtd, through the driver actor.

- Losing libvirtd: the test kills libvirtd by PID, watches the supervised
  driver actor fail and its replacements try to connect with backoff, starts
  libvirtd again and waits for the fresh Inventory. Afterwards it stops the
  libvirtd it started; if it killed one that someone else had started, it
  leaves the replacement running, as it found the host.
- A NIC on a bridge that does not exist: a bad spec, not a lost connection.

Real parts only: libvirtd (started if it is not running), qemu:///system, a
supervisor from ``supervisors``.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import uuid
from typing import Any

import libvirt
import pytest
from backends import wait_for
from supervisors import Backoff, SupFlags, monitor, start_supervisor, which_children

from drivers import Inventory, NicSpec, Subscribers, VMSpec, driver_actor_spec, errors, start_driver_actor
from drivers.libvirt import LibvirtDriver
from drivers.testing.daemons import ensure_libvirtd, libvirtd_pid, started_here

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="killing and starting libvirtd needs root"),
]

FAST = Backoff(initial=0.05, maximum=0.5, multiplier=2.0, jitter=0.1)


class CountingDriver(LibvirtDriver):
    """The real libvirt driver, counting connect attempts (to see the backoff at work)."""

    attempts = 0
    lock = threading.Lock()

    def connect(self) -> None:
        with CountingDriver.lock:
            CountingDriver.attempts += 1
        super().connect()


def test_a_killed_libvirtd_fails_the_actor_and_the_restarted_one_reconnects_and_resends_inventory() -> None:
    handle = ensure_libvirtd()
    name = f"connloss-{uuid.uuid4().hex[:8]}"
    killed_external = False
    replacement = None
    hub = Subscribers()
    got: queue.Queue[Any] = queue.Queue()
    hub.add(got.put)
    child = driver_actor_spec(
        "qemu", lambda: CountingDriver(uri="qemu:///system", name="qemu-connloss", domain_type="qemu",
                                       cpus=2, memory_mb=1024),
        subscribers=hub, connect_attempts=400, backoff=FAST)
    sup = start_supervisor(SupFlags(intensity=20, period=60), [child])
    try:
        first = got.get(timeout=30)
        assert isinstance(first, Inventory) and first.generation == 1
        actor = wait_for(lambda: which_children(sup)[0].ref, 10, "the driver actor")
        actor.proxy().define(VMSpec(name, 1, 64)).get(timeout=30)  # persistent: it outlives the daemon

        downs: queue.Queue[Any] = queue.Queue()
        monitor(actor, downs.put)
        pid = libvirtd_pid()
        assert pid is not None
        killed_external = not started_here(pid)
        os.kill(pid, signal.SIGKILL)
        # libvirt's close callback notices the dead socket while the actor is idle.
        reason = downs.get(timeout=30).reason
        assert isinstance(reason, errors.ConnectionLost) and reason.recoverable
        tries = CountingDriver.attempts
        wait_for(lambda: CountingDriver.attempts >= tries + 3, 30, "reconnect attempts while libvirtd is down")
        assert not any(isinstance(m, Inventory) and m.generation > 1 for m in _drain(got)), \
            "no inventory can be taken while libvirtd is down"

        replacement = ensure_libvirtd()
        fresh = _next_inventory(got, after=1)
        assert name in {v.name for v in fresh.vms}
        restarted = wait_for(lambda: (r := which_children(sup)[0].ref) is not None and r != actor and r, 10,
                             "the restarted driver actor")
        assert restarted.proxy().info(name).get(timeout=30).name == name
        restarted.proxy().undefine(name).get(timeout=30)
    finally:
        sup.stop(timeout=30)
        _forget(name)
        if replacement is not None and killed_external:
            replacement.started.pop("libvirtd", None)  # theirs, restarted: leave it running
        if replacement is not None:
            replacement.stop()
        handle.stop()


def test_a_nic_on_a_missing_bridge_is_an_invalid_spec_naming_it_and_the_actor_lives_on() -> None:
    from drivers.testing.guest import build_guest

    handle = ensure_libvirtd()
    guest = build_guest()
    name = f"nobridge-{uuid.uuid4().hex[:8]}"
    bridge = f"wqnone{os.getpid() % 100000}"
    ref = start_driver_actor(lambda: LibvirtDriver(uri="qemu:///system", name="qemu-nobridge", cpus=2,
                                                   memory_mb=1024))
    try:
        drv = ref.proxy()
        drv.define(VMSpec(name, 1, 128, kernel=str(guest.kernel), initrd=str(guest.initrd), cmdline=guest.cmdline,
                          nics=(NicSpec("tenant-net", bridge=bridge),))).get(timeout=30)
        with pytest.raises(errors.InvalidSpec) as exc:
            drv.start_vm(name).get(timeout=60)
        assert exc.value.recoverable is False and exc.value.context["device"] == bridge
        assert f"network device {bridge!r} does not exist" in str(exc.value)
        assert ref.is_alive()  # a bad spec is not a reason to reconnect
        drv.undefine(name).get(timeout=30)
    finally:
        ref.stop()
        _forget(name)
        handle.stop()


def _drain(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


def _forget(name: str) -> None:
    """Undefine the test's domain if a failure left it behind (best effort: the daemon may be down)."""
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError:
        return
    try:
        conn.lookupByName(name).undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def _next_inventory(q: queue.Queue[Any], after: int) -> Inventory:
    while True:
        msg = q.get(timeout=60)
        if isinstance(msg, Inventory) and msg.generation > after:
            return msg
