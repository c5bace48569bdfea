"""The libvirt driver watches events only while someone listens, and stays right either way.

Real libvirt (test:/// in-process). test:///default is one host shared by
every connection in the process, which is how "someone else" changes it here:
a second plain libvirt-python connection.
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest
from backends import HOSTS_DIR, wait_for
from supervisors import LatchFuture

from drivers import (
    EventKind, Inventory, Resources, Subscribers, VMEvent, VMSpec, VMState, errors, start_driver_actor,
)
from drivers.libvirt import LibvirtDriver, domain_xml

DEFAULT = "test:///default"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def other() -> Iterator[libvirt.virConnect]:
    """Someone else's connection to the same test:///default host."""
    conn = libvirt.open(DEFAULT)
    yield conn
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(("watch-", "stale-", "foreign-")):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()


@pytest.fixture
def drv() -> Iterator[LibvirtDriver]:
    d = LibvirtDriver(uri=DEFAULT, name="watching")
    d.connect()
    yield d
    d.close()


def test_it_registers_for_libvirt_events_only_while_it_has_subscribers(drv: LibvirtDriver) -> None:
    assert not drv.watching_events
    events: queue.Queue[VMEvent] = queue.Queue()
    unsubscribe = drv.subscribe(events.put)
    assert drv.watching_events
    name = unique("watch")
    drv.define(VMSpec(name, 1, 64))
    assert wait_for(lambda: _next(events, name), 5, "the defined event").kind == EventKind.DEFINED
    unsubscribe()
    assert not drv.watching_events
    drv.undefine(name)


def test_a_reconnect_registers_again_for_its_subscribers(drv: LibvirtDriver) -> None:
    events: queue.Queue[VMEvent] = queue.Queue()
    drv.subscribe(events.put)
    drv.close()
    drv.connect()
    assert drv.watching_events
    name = unique("watch")
    drv.define(VMSpec(name, 1, 64))
    assert wait_for(lambda: _next(events, name), 5, "an event after the reconnect").kind == EventKind.DEFINED
    drv.undefine(name)


@pytest.mark.parametrize("watched", [False, True], ids=["unwatched", "watched"])
def test_capacity_counts_a_domain_someone_else_started(drv: LibvirtDriver, other: libvirt.virConnect,
                                                       watched: bool) -> None:
    if watched:
        drv.subscribe(lambda message: None)
    before = drv.capacity().used
    dom = other.defineXML(domain_xml(VMSpec(unique("foreign"), 3, 256), domain_type="test"))
    dom.create()
    # Unwatched it asks libvirt every time; watched, the STARTED event invalidates what it kept.
    wait_for(lambda: drv.capacity().used == before + Resources(3, 256), 5, "the foreign domain counted")
    dom.destroy()
    wait_for(lambda: drv.capacity().used == before, 5, "the foreign domain no longer counted")


def test_a_start_is_refused_on_libvirts_word_not_on_a_stale_tally(other: libvirt.virConnect) -> None:
    drv = LibvirtDriver(uri=DEFAULT, name="tight", cpus=16, memory_mb=1 << 20)
    drv.connect()
    try:
        drv.subscribe(lambda message: None)
        name = unique("watch")
        drv.define(VMSpec(name, 4, 64))
        drv.capacity()  # the ledger is loaded now
        # White box: make the kept tally claim the host is full, as one would be
        # if a stop by someone else had not been announced yet.
        with drv._ledger_lock:
            drv._ledger.reset({"phantom": Resources(16, 0)})
        drv.start(name)  # re-checked with libvirt, which knows better
        assert drv.info(name).state == VMState.RUNNING
        drv.destroy(name)
        drv.undefine(name)
    finally:
        drv.close()


def test_starts_and_stops_made_unwatched_leave_nothing_that_hides_a_later_foreign_stop(
        drv: LibvirtDriver, other: libvirt.virConnect) -> None:
    # Unwatched, no event comes to consume an expectation: had the driver still
    # announced its own STOPPED events then, the first foreign stop seen once
    # watching would be taken for ours and the tally would keep the dead VM.
    name = unique("watch")
    drv.define(VMSpec(name, 2, 128))
    for _ in range(3):
        drv.start(name)
        drv.destroy(name)
    drv.subscribe(lambda message: None)
    before = drv.capacity().used  # the ledger is loaded from libvirt now
    drv.start(name)
    assert drv.capacity().used == before + Resources(2, 128)
    other.lookupByName(name).destroy()  # someone else stops it
    wait_for(lambda: drv.capacity().used == before, 5, "the foreign stop counted")
    drv.undefine(name)


def test_a_domain_someone_else_redefined_under_the_same_name_is_found_again(
        drv: LibvirtDriver, other: libvirt.virConnect) -> None:
    name = unique("stale")
    first = drv.define(VMSpec(name, 1, 64))  # the driver keeps a handle to it
    old = other.lookupByName(name)
    old.undefine()
    other.defineXML(domain_xml(VMSpec(name, 2, 128), domain_type="test"))
    info = drv.info(name)
    assert info.id != first.id and info.vcpus == 2
    drv.start(name)
    assert drv.info(name).state == VMState.RUNNING
    drv.destroy(name)
    drv.undefine(name)
    assert name not in {v.name for v in drv.list()}


def test_the_driver_actor_watches_while_its_subscribers_are_not_empty() -> None:
    made: list[LibvirtDriver] = []

    def factory() -> LibvirtDriver:
        made.append(LibvirtDriver(uri=f"test://{HOSTS_DIR / 'small.xml'}", name="site"))
        return made[-1]

    hub = Subscribers()
    ref = start_driver_actor(factory, subscribers=hub)
    assert not made[-1].watching_events
    got: queue.Queue[Any] = queue.Queue()
    hub.add(got.put)  # straight into the hub, as an agent does: the actor catches up
    inventory = got.get(timeout=5)
    assert isinstance(inventory, Inventory) and inventory.driver == "site"
    assert made[-1].watching_events
    ref.proxy().define(VMSpec("web", 1, 64)).get()
    assert wait_for(lambda: _next(got, "web"), 5, "the defined event").kind == EventKind.DEFINED
    hub.remove(got.put)
    wait_for(lambda: not made[-1].watching_events, 5, "the driver to stop watching")
    ref.proxy().subscribe(got.put).get()
    assert made[-1].watching_events  # subscribe() watches before it returns


def _next(q: queue.Queue[Any], vm: str) -> VMEvent | None:
    while True:
        try:
            msg = q.get_nowait()
        except queue.Empty:
            return None
        if isinstance(msg, VMEvent) and msg.vm == vm:
            return msg


# --- the driver actor's replies -----------------------------------------------------------------


def test_driver_actor_replies_are_latch_futures_and_errors_reach_the_caller() -> None:
    ref = start_driver_actor(lambda: LibvirtDriver(uri=f"test://{HOSTS_DIR / 'small.xml'}"))
    future = ref.proxy().list()
    assert isinstance(future, LatchFuture)
    assert future.get(timeout=5) == []
    with pytest.raises(errors.VMNotFound):
        ref.proxy().info("ghost").get(timeout=5)
