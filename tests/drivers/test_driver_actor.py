"""The DriverActor: calls on its own thread, events to subscribers, supervised reconnects.

All against the simulated hypervisor (real threads, real actors, real supervisor).
"""

from __future__ import annotations

import queue
from typing import Any

import pykka
import pytest
from backends import wait_for
from supervisors import Backoff, StartError, SupFlags, WatchedActor, monitor, start_supervisor, which_children

from drivers import (
    DriverActor, EventKind, Inventory, Subscribers, VMEvent, VMSpec, VMState, driver_actor_spec, driver_factory,
    errors, start_driver_actor,
)
from drivers.sim import SimDriver, SimHypervisor

FAST = Backoff(initial=0.01, maximum=0.05, multiplier=2.0, jitter=0.0)


class Collector(WatchedActor):
    """A subscriber actor that puts every message it gets on a queue."""

    def __init__(self, out: queue.Queue[Any]) -> None:
        super().__init__()
        self.out = out

    def on_receive(self, message: Any) -> None:
        self.out.put(message)


def take(q: queue.Queue[Any], match: Any, timeout: float = 5.0) -> Any:
    """The next message satisfying ``match``; others are skipped."""
    seen = []
    while True:
        try:
            msg = q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no matching message within {timeout}s; saw {seen}") from None
        if match(msg):
            return msg
        seen.append(msg)


def spec(name: str) -> VMSpec:
    return VMSpec(name, 1, 64, metadata={"tenant": "acme"})


def test_operations_run_through_the_actor_and_events_reach_a_subscriber_actor() -> None:
    ref = start_driver_actor(lambda: SimDriver(name="site-a", hosts=2))
    drv = ref.proxy()
    out: queue.Queue[Any] = queue.Queue()
    sub = Collector.start(out)
    first = drv.subscribe(sub).get()
    assert isinstance(first, Inventory) and first.driver == "site-a" and first.vms == ()
    assert take(out, lambda m: isinstance(m, Inventory)).capacity.total.cpus == 32
    assert drv.define(spec("web-1")).get().state == VMState.DEFINED
    drv.start_vm("web-1").get()
    assert take(out, lambda m: isinstance(m, VMEvent) and m.kind == EventKind.STARTED).vm == "web-1"
    assert drv.info("web-1").get().state == VMState.RUNNING
    assert [v.name for v in drv.list().get()] == ["web-1"]
    assert drv.capabilities().get().live_migration is True


def test_an_error_from_the_driver_reaches_the_caller_and_the_actor_lives_on() -> None:
    ref = start_driver_actor(lambda: SimDriver())
    with pytest.raises(errors.VMNotFound):
        ref.proxy().info("ghost").get()
    assert ref.is_alive()
    assert ref.proxy().list().get() == []


def test_create_defines_and_starts_in_one_call_and_stops_at_the_first_error() -> None:
    hv = SimHypervisor(hosts=1, host_cpus=2, host_memory_mb=512)
    ref = start_driver_actor(lambda: SimDriver(name="site-c", hypervisor=hv))
    drv = ref.proxy()
    assert drv.find("a").get() is None
    info = drv.create(spec("a")).get()
    assert drv.find("a").get() == drv.info("a").get()
    assert info.state is VMState.RUNNING and info.name == "a"
    drv.destroy("a").get()
    assert drv.start_and_info("a").get().state is VMState.RUNNING
    with pytest.raises(errors.DriverError):  # no room left: defined, not started, as define+start
        drv.create(VMSpec("big", 2, 64)).get()
    assert drv.info("big").get().state is not VMState.RUNNING


def test_a_hung_backend_call_does_not_stall_another_driver_actor() -> None:
    stuck_hv = SimHypervisor("stuck")
    stuck = start_driver_actor(lambda: SimDriver(hypervisor=stuck_hv))
    healthy = start_driver_actor(lambda: SimDriver(name="healthy"))
    stuck_hv.inject(hang_ops={"list"})
    pending = stuck.proxy().list()  # blocks the stuck actor's thread
    for i in range(20):
        healthy.proxy().define(spec(f"vm-{i}")).get(timeout=2)
    assert len(healthy.proxy().list().get(timeout=2)) == 20
    with pytest.raises(pykka.Timeout):
        pending.get(timeout=0.05)
    stuck_hv.release_hangs()
    assert pending.get(timeout=5) == []


def test_a_call_that_finds_the_connection_gone_fails_the_actor_with_connection_lost() -> None:
    hv = SimHypervisor("flaky")
    ref = start_driver_actor(lambda: SimDriver(hypervisor=hv))
    downs: queue.Queue[Any] = queue.Queue()
    monitor(ref, downs.put)
    hv.inject(unreachable=True)
    with pytest.raises(errors.ConnectionLost):
        ref.proxy().list().get(timeout=5)
    reason = downs.get(timeout=5).reason
    assert isinstance(reason, errors.ConnectionLost) and reason.recoverable


def test_a_connection_dropped_while_idle_fails_the_actor() -> None:
    hv = SimHypervisor("idle")
    ref = start_driver_actor(lambda: SimDriver(hypervisor=hv))
    downs: queue.Queue[Any] = queue.Queue()
    monitor(ref, downs.put)
    assert hv.drop_connections() == 1
    assert isinstance(downs.get(timeout=5).reason, errors.ConnectionLost)


def test_the_supervisor_restarts_it_and_subscribers_get_a_fresh_inventory_with_what_they_missed() -> None:
    SimHypervisor.forget("site-b")
    hv = SimHypervisor.named("site-b", hosts=4)
    hub = Subscribers()
    child = driver_actor_spec("site-b", driver_factory("sim", endpoint="site-b"), subscribers=hub,
                              connect_attempts=200, backoff=FAST)
    sup = start_supervisor(SupFlags(intensity=10, period=5), [child])
    actor = wait_for(lambda: which_children(sup)[0].ref, 5, "the driver actor")
    out: queue.Queue[Any] = queue.Queue()
    sub = Collector.start(out)
    actor.proxy().subscribe(sub).get()
    actor.proxy().define(spec("before")).get()
    take(out, lambda m: isinstance(m, VMEvent) and m.vm == "before")

    hv.inject(unreachable=True)
    hv.drop_connections()
    # While the endpoint is unreachable, a VM appears that no event will announce.
    hv.define(spec("missed"), "someone-else")
    wait_for(lambda: hv.connect_attempts >= 3, 5, "reconnect attempts with backoff")
    hv.heal()

    fresh = take(out, lambda m: isinstance(m, Inventory) and m.generation >= 2)
    assert {v.name for v in fresh.vms} == {"before", "missed"}
    restarted = wait_for(lambda: (r := which_children(sup)[0].ref) is not None and r != actor and r, 5,
                         "the restarted driver actor")
    assert restarted.proxy().info("missed").get().name == "missed"
    restarted.proxy().start_vm("missed").get()
    assert take(out, lambda m: isinstance(m, VMEvent) and m.kind == EventKind.STARTED).vm == "missed"
    SimHypervisor.forget("site-b")


def test_it_gives_up_at_once_on_wrong_credentials() -> None:
    hv = SimHypervisor("locked", faults={"auth_failure": True})
    with pytest.raises(StartError) as exc:
        start_driver_actor(lambda: SimDriver(hypervisor=hv), connect_attempts=5, backoff=FAST)
    assert isinstance(exc.value.reason, errors.AuthenticationFailed)
    assert hv.connect_attempts == 1


def test_it_retries_connecting_with_backoff_until_the_endpoint_answers() -> None:
    hv = SimHypervisor("late", faults={"unreachable": True})
    ref = DriverActor.start(lambda: SimDriver(hypervisor=hv), connect_attempts=500, backoff=FAST)
    wait_for(lambda: hv.connect_attempts >= 3, 5, "three connect attempts")
    assert hv.connections == 0
    hv.heal()
    assert ref.proxy().list().get(timeout=5) == []
    assert hv.connections == 1


def test_a_dead_subscriber_is_dropped() -> None:
    ref = start_driver_actor(lambda: SimDriver())
    out: queue.Queue[Any] = queue.Queue()
    sub = Collector.start(out)
    ref.proxy().subscribe(sub).get()
    sub.stop()
    ref.proxy().define(spec("x")).get()
    assert len(ref.proxy().subscribers.get()) == 0
