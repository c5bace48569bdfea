"""One contract, every driver: each test runs over every backend in backends.BACKENDS."""

from __future__ import annotations

import dataclasses
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import BACKENDS, Backend, wait_for

from drivers import (
    OPERATION_CAPABILITY, Capabilities, Capacity, Driver, EventKind, NicSpec, VMEvent, VMInfo, VMState, errors,
)


@pytest.fixture(scope="session")
def prepared() -> Iterator[dict[int, Callable[[], None]]]:
    """Each backend's session-wide set-up, done once on first use and undone at the end."""
    undo: dict[int, Callable[[], None]] = {}
    yield undo
    for fn in reversed(list(undo.values())):
        fn()


def prepare(backend: Backend, undo: dict[int, Callable[[], None]]) -> None:
    if backend.prepare is not None and id(backend) not in undo:
        undo[id(backend)] = backend.prepare()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, prepared: dict[int, Callable[[], None]]) -> Backend:
    prepare(request.param, prepared)
    return request.param


@pytest.fixture
def driver(backend: Backend, tmp_path: Path) -> Iterator[Driver]:
    drv = backend.make(tmp_path)
    drv.connect()
    yield drv
    if backend.cleanup is not None:
        backend.cleanup(drv)
    drv.close()


@pytest.fixture
def events(driver: Driver) -> Iterator[queue.Queue[VMEvent]]:
    q: queue.Queue[VMEvent] = queue.Queue()
    unsubscribe = driver.subscribe(q.put)
    yield q
    unsubscribe()


def define(driver: Driver, backend: Backend, tmp: Path, name: str = "vm-1", **overrides: object) -> VMInfo:
    spec = backend.spec(name, tmp)
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    return driver.define(spec)


def state_of(driver: Driver, name: str) -> VMState:
    return driver.info(name).state


def wait_state(driver: Driver, backend: Backend, name: str, state: VMState) -> None:
    wait_for(lambda: state_of(driver, name) == state, backend.timeout, f"{name} to be {state.value}")


def next_event(q: queue.Queue[VMEvent], backend: Backend, vm: str, kind: EventKind) -> VMEvent:
    """The next event for ``vm`` of ``kind``, skipping other VMs' and other kinds' events."""
    seen = []
    while True:
        try:
            ev = q.get(timeout=backend.timeout)
        except queue.Empty:
            raise AssertionError(f"no {kind.value} event for {vm} within {backend.timeout}s; saw {seen}") from None
        seen.append((ev.vm, ev.kind.value))
        if ev.vm == vm and ev.kind == kind:
            return ev


def running_vm(driver: Driver, backend: Backend, tmp: Path, name: str = "vm-1") -> str:
    define(driver, backend, tmp, name)
    driver.start(name)
    wait_state(driver, backend, name, VMState.RUNNING)
    return name


# --- declaration --------------------------------------------------------------------------


def test_declares_its_capabilities_as_data(driver: Driver) -> None:
    assert isinstance(driver.capabilities, Capabilities)
    described = driver.describe()
    assert described["name"] == driver.name
    assert Capabilities.from_dict(described["capabilities"]) == driver.capabilities


def test_reports_capacity_with_a_per_host_breakdown_that_adds_up(driver: Driver) -> None:
    cap = driver.capacity()
    assert isinstance(cap, Capacity)
    assert cap.total.cpus > 0 and cap.total.memory_mb > 0
    if driver.capabilities.per_host_capacity:
        assert cap.hosts
        assert sum(h.total.cpus for h in cap.hosts) == cap.total.cpus
        assert sum(h.used.memory_mb for h in cap.hosts) == cap.used.memory_mb


# --- define / info / list -----------------------------------------------------------------


def test_define_returns_a_defined_vm_carrying_the_spec(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    spec = backend.spec("vm-1", tmp_path)
    info = driver.define(spec)
    assert info.name == "vm-1"
    assert info.state == VMState.DEFINED
    assert (info.vcpus, info.memory_mb) == (spec.vcpus, spec.memory_mb)
    assert dict(info.metadata) == dict(spec.metadata)
    assert [n.network for n in info.nics] == [n.network for n in spec.nics]
    assert all(n.mac for n in info.nics), "the backend fills in MACs it chose"
    assert driver.info("vm-1").state == VMState.DEFINED


def test_list_shows_every_defined_vm(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    define(driver, backend, tmp_path, "vm-a")
    define(driver, backend, tmp_path, "vm-b")
    names = {v.name for v in driver.list()}
    assert {"vm-a", "vm-b"} <= names


def test_defining_a_taken_name_raises_vm_exists(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    define(driver, backend, tmp_path)
    with pytest.raises(errors.VMExists) as exc:
        define(driver, backend, tmp_path)
    assert exc.value.vm == "vm-1" and exc.value.driver == driver.name


def test_a_vm_larger_than_any_host_raises_capacity_exceeded(driver: Driver, backend: Backend,
                                                            tmp_path: Path) -> None:
    with pytest.raises(errors.CapacityExceeded):
        define(driver, backend, tmp_path, "huge", vcpus=100_000, memory_mb=1 << 30)
    assert "huge" not in {v.name for v in driver.list()}


@pytest.mark.parametrize("op", ["info", "start", "shutdown", "destroy", "undefine"])
def test_operations_on_a_missing_vm_raise_vm_not_found(driver: Driver, op: str) -> None:
    with pytest.raises(errors.VMNotFound) as exc:
        getattr(driver, op)("no-such-vm")
    assert exc.value.vm == "no-such-vm"
    assert exc.value.recoverable is False


# --- lifecycle ---------------------------------------------------------------------------------


def test_start_shutdown_destroy_and_undefine_walk_the_lifecycle(driver: Driver, backend: Backend,
                                                                tmp_path: Path) -> None:
    running_vm(driver, backend, tmp_path)
    if backend.booted is not None:
        backend.booted(driver, "vm-1", tmp_path)  # a real guest hears ACPI only once its OS runs
    driver.shutdown("vm-1")
    wait_state(driver, backend, "vm-1", VMState.SHUTOFF)
    driver.start("vm-1")
    wait_state(driver, backend, "vm-1", VMState.RUNNING)
    driver.destroy("vm-1")
    assert state_of(driver, "vm-1") == VMState.SHUTOFF
    driver.undefine("vm-1")
    assert "vm-1" not in {v.name for v in driver.list()}
    with pytest.raises(errors.VMNotFound):
        driver.info("vm-1")


def test_starting_a_running_vm_raises_invalid_state(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    running_vm(driver, backend, tmp_path)
    with pytest.raises(errors.InvalidState):
        driver.start("vm-1")


def test_undefining_a_running_vm_raises_invalid_state(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    running_vm(driver, backend, tmp_path)
    with pytest.raises(errors.InvalidState):
        driver.undefine("vm-1")
    assert state_of(driver, "vm-1") == VMState.RUNNING


def test_a_running_vm_counts_against_capacity_until_destroyed(driver: Driver, backend: Backend,
                                                              tmp_path: Path) -> None:
    before = driver.capacity().used
    spec = backend.spec("vm-1", tmp_path)
    running_vm(driver, backend, tmp_path)
    during = driver.capacity().used
    assert during.cpus - before.cpus == spec.vcpus
    assert during.memory_mb - before.memory_mb == spec.memory_mb
    driver.destroy("vm-1")
    wait_state(driver, backend, "vm-1", VMState.SHUTOFF)
    assert driver.capacity().used == before


def test_starting_beyond_free_capacity_raises_a_recoverable_capacity_exceeded(
        driver: Driver, backend: Backend, tmp_path: Path) -> None:
    cap = driver.capacity()
    biggest = max(cap.hosts, key=lambda h: h.free.cpus) if cap.hosts else None
    vcpus = (biggest.free.cpus if biggest else cap.free.cpus)
    # Two VMs that each take every free cpu of the roomiest host: one of them cannot start.
    per_host = [h.free.cpus for h in cap.hosts] or [cap.free.cpus]
    names = [f"big-{i}" for i in range(len(per_host) + 1)]
    for name in names:
        define(driver, backend, tmp_path, name, vcpus=vcpus, memory_mb=64)
    with pytest.raises(errors.CapacityExceeded) as exc:
        for name in names:
            driver.start(name)
    assert exc.value.recoverable is True


# --- optional operations: work if declared, NotSupported if not -------------------------------


def _exercise(driver: Driver, backend: Backend, tmp: Path, op: str) -> None:
    name = running_vm(driver, backend, tmp)
    if op == "suspend":
        driver.suspend(name)
        assert state_of(driver, name) == VMState.PAUSED
    elif op == "resume":
        driver.suspend(name)
        driver.resume(name)
        assert state_of(driver, name) == VMState.RUNNING
    elif op == "reboot":
        driver.reboot(name)
        wait_state(driver, backend, name, VMState.RUNNING)
    elif op == "snapshot":
        driver.snapshot(name, "before-upgrade")
        with pytest.raises(errors.VMExists):
            driver.snapshot(name, "before-upgrade")
    elif op == "console_log":
        path = driver.console_log(name)
        assert path == backend.spec(name, tmp).console_log
    elif op == "attach_nic":
        info = driver.attach_nic(name, NicSpec("second-net", bridge=backend.bridges[1]))
        assert [n.network for n in info.nics][-1] == "second-net"
    elif op == "migrate":
        info = driver.info(name)
        dest = next(h.host for h in driver.capacity().hosts if h.host != info.host)
        moved = driver.migrate(name, dest)
        assert moved.host == dest == driver.info(name).host
        assert state_of(driver, name) == VMState.RUNNING
        assert driver.capacity().host(dest).used.cpus >= 1


@pytest.mark.parametrize("op", sorted(OPERATION_CAPABILITY))
def test_an_optional_operation_works_when_declared_and_is_not_supported_otherwise(
        driver: Driver, backend: Backend, tmp_path: Path, op: str) -> None:
    if driver.capabilities.allows(op):
        _exercise(driver, backend, tmp_path, op)
        return
    name = running_vm(driver, backend, tmp_path)
    args = {"migrate": (name, "elsewhere"), "snapshot": (name, "s"),
            "attach_nic": (name, NicSpec("n"))}.get(op, (name,))
    with pytest.raises(errors.NotSupported) as exc:
        getattr(driver, op)(*args)
    assert exc.value.context["op"] == op
    assert "not supported" in str(exc.value)
    assert state_of(driver, name) == VMState.RUNNING


def test_suspending_a_stopped_vm_is_refused(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    define(driver, backend, tmp_path)
    expected = errors.InvalidState if driver.capabilities.suspend else errors.NotSupported
    with pytest.raises(expected):
        driver.suspend("vm-1")


# --- events ------------------------------------------------------------------------------------


def test_lifecycle_events_reach_subscribers(driver: Driver, backend: Backend, tmp_path: Path,
                                            events: queue.Queue[VMEvent]) -> None:
    define(driver, backend, tmp_path)
    assert next_event(events, backend, "vm-1", EventKind.DEFINED).driver == driver.name
    driver.start("vm-1")
    next_event(events, backend, "vm-1", EventKind.STARTED)
    if driver.capabilities.suspend:
        driver.suspend("vm-1")
        next_event(events, backend, "vm-1", EventKind.SUSPENDED)
        driver.resume("vm-1")
        next_event(events, backend, "vm-1", EventKind.RESUMED)
    driver.destroy("vm-1")
    stopped = next_event(events, backend, "vm-1", EventKind.STOPPED)
    assert stopped.timestamp > 0
    driver.undefine("vm-1")
    next_event(events, backend, "vm-1", EventKind.REMOVED)


def test_migration_is_announced_to_subscribers(driver: Driver, backend: Backend, tmp_path: Path,
                                               events: queue.Queue[VMEvent]) -> None:
    name = running_vm(driver, backend, tmp_path)
    if not driver.capabilities.live_migration:
        with pytest.raises(errors.NotSupported):
            driver.migrate(name, "elsewhere")
        return
    dest = next(h.host for h in driver.capacity().hosts if h.host != driver.info(name).host)
    driver.migrate(name, dest)
    assert next_event(events, backend, name, EventKind.MIGRATED).host == dest


def test_an_unsubscribed_callback_gets_nothing_more(driver: Driver, backend: Backend, tmp_path: Path) -> None:
    got: list[VMEvent] = []
    unsubscribe = driver.subscribe(got.append)
    unsubscribe()
    q: queue.Queue[VMEvent] = queue.Queue()
    driver.subscribe(q.put)
    define(driver, backend, tmp_path)
    next_event(q, backend, "vm-1", EventKind.DEFINED)  # the still-subscribed one did hear it
    assert got == []


CRASHABLE = [p for p in BACKENDS if p.values[0].crash is not None]


@pytest.mark.parametrize("crashable", CRASHABLE)
def test_a_crash_is_reported_as_a_crashed_event_and_state(crashable: Backend, tmp_path: Path,
                                                          prepared: dict[int, Callable[[], None]]) -> None:
    prepare(crashable, prepared)
    drv = crashable.make(tmp_path)
    drv.connect()
    q: queue.Queue[VMEvent] = queue.Queue()
    drv.subscribe(q.put)
    try:
        running_vm(drv, crashable, tmp_path)
        crashable.crash(drv, "vm-1")  # type: ignore[misc]
        next_event(q, crashable, "vm-1", EventKind.CRASHED)
        assert state_of(drv, "vm-1") == VMState.CRASHED
        drv.start("vm-1")  # a crashed VM can be started again
        wait_state(drv, crashable, "vm-1", VMState.RUNNING)
    finally:
        if crashable.cleanup is not None:
            crashable.cleanup(drv)
        drv.close()


# --- connection errors ----------------------------------------------------------------------------


def test_calls_on_a_closed_driver_raise_recoverable_connection_lost(driver: Driver) -> None:
    driver.close()
    with pytest.raises(errors.ConnectionLost) as exc:
        driver.list()
    assert exc.value.recoverable is True
    assert exc.value.driver == driver.name


DROPPABLE = [p for p in BACKENDS if p.values[0].drop_connection is not None]


@pytest.mark.parametrize("droppable", DROPPABLE)
def test_a_dropped_connection_raises_connection_lost_until_reconnected(
        droppable: Backend, tmp_path: Path, prepared: dict[int, Callable[[], None]]) -> None:
    prepare(droppable, prepared)
    drv = droppable.make(tmp_path)
    drv.connect()
    noticed: queue.Queue[errors.ConnectionLost] = queue.Queue()
    drv.watch_connection(noticed.put)
    try:
        define(drv, droppable, tmp_path)
        droppable.drop_connection(drv)  # type: ignore[misc]
        assert noticed.get(timeout=droppable.timeout).recoverable
        with pytest.raises(errors.ConnectionLost):
            drv.info("vm-1")
        drv.connect()
        assert drv.info("vm-1").name == "vm-1"
    finally:
        if droppable.cleanup is not None:
            droppable.cleanup(drv)
        drv.close()
