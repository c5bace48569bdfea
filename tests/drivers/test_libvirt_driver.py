"""libvirt specifics on libvirt's in-process test driver (real libvirt, no daemon)."""

from __future__ import annotations

import queue
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest
from backends import HOSTS_DIR

from drivers import NicSpec, VMEvent, VMSpec, VMState, errors
from drivers.libvirt import LibvirtDriver, domain_xml, event_loop_thread
from drivers.libvirt._errors import translate
from drivers.libvirt._states import map_event, map_state


def host(name: str) -> str:
    return f"test://{HOSTS_DIR / name}"


def test_domain_xml_puts_nics_on_a_bridge_or_a_tap_and_the_console_in_a_file() -> None:
    spec = VMSpec("web", 2, 512, kernel="/boot/vmlinuz", initrd="/boot/initrd", cmdline="console=ttyS0",
                  nics=(NicSpec("blue", bridge="br-blue", mac="52:54:00:00:00:01"), NicSpec("red", tap="tap-red")),
                  console_log="/var/log/wind/web.log")
    root = ET.fromstring(domain_xml(spec, domain_type="qemu"))
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == "/boot/vmlinuz" and root.findtext("os/cmdline") == "console=ttyS0"
    bridge, tap = root.findall("devices/interface")
    assert (bridge.get("type"), bridge.find("source").get("bridge")) == ("bridge", "br-blue")
    assert bridge.find("mac").get("address") == "52:54:00:00:00:01"
    assert (tap.get("type"), tap.find("target").get("dev"), tap.find("target").get("managed")) == \
        ("ethernet", "tap-red", "no")
    assert root.find("devices/serial[@type='file']/source").get("path") == "/var/log/wind/web.log"
    assert root.find("devices/console/target").get("type") == "serial"


def test_the_host_xml_sets_the_size_of_the_simulated_host() -> None:
    small, large = LibvirtDriver(uri=host("small.xml")), LibvirtDriver(uri=host("large.xml"))
    small.connect()
    large.connect()
    try:
        assert (small.capacity().total.cpus, small.capacity().total.memory_mb) == (4, 8192)
        assert (large.capacity().total.cpus, large.capacity().total.memory_mb) == (64, 262144)
        assert small.list() == [] and large.list() == []
    finally:
        small.close()
        large.close()


def test_capacity_is_enforced_by_us_although_the_test_driver_would_overcommit() -> None:
    drv = LibvirtDriver(uri=host("small.xml"))
    drv.connect()
    try:
        for i in range(3):
            drv.define(VMSpec(f"vm-{i}", 2, 1024))
        drv.start("vm-0")
        drv.start("vm-1")
        with pytest.raises(errors.CapacityExceeded, match="free"):
            drv.start("vm-2")
        assert drv.info("vm-2").state == VMState.DEFINED
    finally:
        drv.close()


def test_every_driver_in_the_process_shares_one_event_loop_thread(tmp_path: Path) -> None:
    drivers = [LibvirtDriver(uri=host("small.xml"), name=f"d{i}") for i in range(3)]
    seen: queue.Queue[tuple[VMEvent, str]] = queue.Queue()
    for d in drivers:
        d.subscribe(lambda ev: seen.put((ev, threading.current_thread().name)))
        d.connect()
    try:
        before = {t.name for t in threading.enumerate()}.copy()
        for d in drivers:
            d.define(VMSpec("vm", 1, 64))
        threads = {seen.get(timeout=5)[1] for _ in drivers}
        assert threads == {"wind-libvirt-events"}
        assert event_loop_thread() is not None and event_loop_thread().is_alive()
        assert sum(t.name == "wind-libvirt-events" for t in threading.enumerate()) == 1
        assert {t.name for t in threading.enumerate()} <= before | {"wind-libvirt-events"}
    finally:
        for d in drivers:
            d.close()


def test_foreign_domains_are_listed_with_mapped_states() -> None:
    drv = LibvirtDriver(uri="test:///default")
    drv.connect()
    try:
        foreign = next(v for v in drv.list() if v.name == "test")  # test:///default ships one
        assert foreign.state == VMState.RUNNING
        assert foreign.vcpus == 2 and dict(foreign.metadata) == {}
        assert foreign.nics[0].network == "default"
    finally:
        drv.close()


def test_libvirt_errors_are_translated_with_their_code() -> None:
    conn = libvirt.open(host("small.xml"))
    try:
        with pytest.raises(libvirt.libvirtError) as raw:
            conn.lookupByName("missing")
        err = translate(raw.value, driver="d", vm="missing", op="info")
        assert isinstance(err, errors.VMNotFound)
        assert err.context["code"] == libvirt.VIR_ERR_NO_DOMAIN and err.vm == "missing"
    finally:
        conn.close()


def test_an_unopenable_uri_is_a_recoverable_connection_lost() -> None:
    drv = LibvirtDriver(uri="test:///nonexistent/host.xml")
    with pytest.raises(errors.ConnectionLost) as exc:
        drv.connect()
    assert exc.value.recoverable and "cannot open" in str(exc.value)


@pytest.mark.parametrize(("state", "reason", "expected"), [
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN, VMState.DEFINED),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED, VMState.SHUTOFF),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, VMState.CRASHED),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, VMState.MIGRATING),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, VMState.PAUSED),
    (libvirt.VIR_DOMAIN_BLOCKED, 0, VMState.RUNNING),
    (libvirt.VIR_DOMAIN_NOSTATE, 0, VMState.UNKNOWN),
    (99, 0, VMState.UNKNOWN),
])
def test_libvirt_states_map_into_the_one_enum_with_unknown_as_fallback(state: int, reason: int,
                                                                      expected: VMState) -> None:
    assert map_state(state, reason) is expected


def test_a_crash_stop_event_is_a_crashed_event_and_updates_are_ignored() -> None:
    assert map_event(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED)[0].value == "crashed"
    assert map_event(libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_UPDATED) is None
    assert map_event(12345, 0) is None


def system_error(message: str) -> libvirt.libvirtError:
    """A libvirt "system error" (code 38) as libvirt reports it (its err tuple set as libvirt sets it)."""
    exc = libvirt.libvirtError(message)
    exc.err = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_NONE, message, libvirt.VIR_ERR_ERROR,
               "%s", message, None, -1, -1)
    return exc


def test_a_missing_bridge_is_an_invalid_spec_naming_it_not_a_lost_connection() -> None:
    # The message libvirtd 9 gives when a NIC's bridge does not exist (tests/drivers/test_qemu_faults.py
    # sees it for real).
    err = translate(system_error("Cannot get interface MTU on 'br-gone': No such device"),
                    driver="d", vm="web", op="start")
    assert isinstance(err, errors.InvalidSpec) and not err.recoverable
    assert err.context["device"] == "br-gone" and "'br-gone' does not exist" in str(err)


def test_a_system_error_on_a_live_connection_is_a_backend_error_and_on_a_dead_one_a_lost_connection() -> None:
    live = libvirt.open(host("small.xml"))
    dead = libvirt.open(host("small.xml"))
    dead.close()
    try:
        broken = system_error("Cannot open log file: Permission denied")
        on_live = translate(broken, driver="d", op="start", conn=live)
        assert type(on_live) is errors.BackendError and not on_live.recoverable
        on_dead = translate(broken, driver="d", op="start", conn=dead)
        assert isinstance(on_dead, errors.ConnectionLost) and on_dead.recoverable
    finally:
        live.close()
