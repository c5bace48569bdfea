"""Real QEMU (TCG) under libvirtd, driven through the DriverActor wrapping the libvirt driver.

Needs root: it starts virtlogd+libvirtd when they are not running (and stops
only what it started, by PID), and boots a tiny guest built from the host's
Debian kernel and busybox-static (drivers.testing.guest).
"""

from __future__ import annotations

import os
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers import EventKind, Inventory, VMEvent, VMSpec, VMState, start_driver_actor
from drivers.libvirt import LibvirtDriver
from drivers.testing.daemons import ensure_libvirtd
from drivers.testing.guest import BOOTED_MARKER, POWEROFF_MARKER, build_guest, newc_archive, wait_for_marker

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="real QEMU under qemu:///system needs root"),
]


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[None]:
    handle = ensure_libvirtd()
    yield
    handle.stop()


def console_dir() -> Path:
    # QEMU runs as libvirt-qemu and virtlogd writes the console: keep logs in a
    # world-traversable place rather than pytest's 0700 tmp_path.
    path = Path("/var/tmp/wind-guest/console")
    path.mkdir(parents=True, exist_ok=True)
    return path


def next_event(q: queue.Queue, vm: str, kind: EventKind, timeout: float = 60) -> VMEvent:
    seen = []
    while True:
        try:
            item = q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {kind.value} event for {vm}; saw {seen}") from None
        if isinstance(item, VMEvent):
            seen.append(item.kind.value)
            if item.vm == vm and item.kind == kind:
                return item


def test_the_guest_initramfs_is_a_valid_newc_archive_with_console_and_init(tmp_path: Path) -> None:
    import gzip
    import subprocess

    guest = build_guest(cache_dir=tmp_path)
    listing = subprocess.run(["cpio", "-it"], input=gzip.decompress(guest.initrd.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    assert {"init", "bin/busybox", "dev/console", "etc/acpi/PWRF/00000080"} <= set(listing)
    assert build_guest(cache_dir=tmp_path) == guest  # cached: same inputs, same paths
    assert newc_archive([]).startswith(b"070701")


@pytest.mark.slow
def test_a_real_guest_boots_suspends_resumes_and_goes_away_through_the_driver_actor(libvirtd: None) -> None:
    guest = build_guest()
    name = f"wind-qemu-{uuid.uuid4().hex[:8]}"
    log = console_dir() / f"{name}.log"
    spec = VMSpec(name=name, vcpus=1, memory_mb=128, kernel=str(guest.kernel), initrd=str(guest.initrd),
                  cmdline=guest.cmdline, console_log=str(log), metadata={"tenant": "acme"})
    ref = start_driver_actor(lambda: LibvirtDriver(uri="qemu:///system", name="qemu-test", domain_type="qemu"))
    proxy = ref.proxy()
    got: queue.Queue = queue.Queue()
    try:
        assert isinstance(proxy.subscribe(got.put).get(timeout=30), Inventory)
        proxy.define(spec).get(timeout=120)
        proxy.start_vm(name).get(timeout=120)
        next_event(got, name, EventKind.STARTED)
        waited = wait_for_marker(log, BOOTED_MARKER, timeout=120)
        assert waited < 120
        assert proxy.info(name).get(timeout=30).state is VMState.RUNNING

        proxy.suspend(name).get(timeout=60)
        next_event(got, name, EventKind.SUSPENDED)
        assert proxy.info(name).get(timeout=30).state is VMState.PAUSED
        proxy.resume(name).get(timeout=60)
        next_event(got, name, EventKind.RESUMED)
        assert proxy.info(name).get(timeout=30).state is VMState.RUNNING

        proxy.destroy(name).get(timeout=60)
        next_event(got, name, EventKind.STOPPED)
        assert proxy.info(name).get(timeout=30).state is VMState.SHUTOFF
        proxy.undefine(name).get(timeout=60)
        next_event(got, name, EventKind.REMOVED)
        assert name not in {v.name for v in proxy.list().get(timeout=30)}
    finally:
        _force_cleanup(name)
        ref.stop()


@pytest.mark.slow
def test_a_real_guest_powers_off_gracefully_on_shutdown(libvirtd: None) -> None:
    guest = build_guest()
    name = f"wind-qemu-{uuid.uuid4().hex[:8]}"
    log = console_dir() / f"{name}.log"
    drv = LibvirtDriver(uri="qemu:///system", name="qemu-shutdown", domain_type="qemu")
    drv.connect()
    got: queue.Queue = queue.Queue()
    drv.subscribe(got.put)
    try:
        drv.define(VMSpec(name=name, vcpus=1, memory_mb=128, kernel=str(guest.kernel), initrd=str(guest.initrd),
                          cmdline=guest.cmdline, console_log=str(log)))
        drv.start(name)
        wait_for_marker(log, BOOTED_MARKER, timeout=120)
        drv.shutdown(name)  # ACPI power button: the guest's acpid powers it off
        next_event(got, name, EventKind.STOPPED)
        wait_for_marker(log, POWEROFF_MARKER, timeout=10)
        assert drv.info(name).state is VMState.SHUTOFF
        drv.undefine(name)
    finally:
        _force_cleanup(name)
        drv.close()


def _force_cleanup(name: str) -> None:
    """Leave no domain behind if an assertion failed half-way (plain libvirt, test teardown only)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        conn.close()
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()
    conn.close()
