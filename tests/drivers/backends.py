"""The drivers the conformance suite runs against, as data.

Append a ``pytest.param(Backend(...), id="...")`` to ``BACKENDS`` to put
another driver through every contract test: ``sim``, ``sim-minimal``,
``libvirt-test``, ``cloud-ec2-moto`` and, in the slow set (as root),
``libvirt-qemu``: real QEMU guests under libvirtd, started once per session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers import Driver, NicSpec, VMSpec
from drivers.libvirt import LibvirtDriver
from drivers.sim import SimDriver

HOSTS_DIR = Path(__file__).resolve().parents[2] / "examples" / "hosts"


@dataclass(frozen=True)
class Backend:
    """How to run the contract against one driver.

    Attributes:
        make: builds a fresh, unconnected driver for a private endpoint
            (gets the test's tmp_path).
        spec: builds the small VM spec the suite uses (name, tmp_path).
        crash: makes a running VM crash for real, or None if the backend
            cannot be made to (crash tests then leave this backend out).
        drop_connection: breaks the driver's live connection from outside,
            or None if that cannot be done here.
        timeout: seconds to wait for an event or a state change.
        cleanup: runs after each test with the connected driver (shared endpoints).
        prepare: session-wide set-up (daemons, host bridges) run once before
            the backend's first test; returns the function that undoes it at
            the end of the session.
        bridges: the two host bridges the suite's NICs name (the spec's NIC,
            then the one attach_nic adds); they must exist where NICs are real.
        booted: waits until a freshly started VM's guest is up (a real guest
            ignores an ACPI shutdown sent before its OS listens), or None.
    """

    make: Callable[[Path], Driver]
    spec: Callable[[str, Path], VMSpec] = field(default=lambda name, tmp: tiny_spec(name, tmp))
    crash: Callable[[Driver, str], None] | None = None
    drop_connection: Callable[[Driver], None] | None = None
    timeout: float = 5.0
    cleanup: Callable[[Driver], None] | None = None
    prepare: Callable[[], Callable[[], None]] | None = None
    bridges: tuple[str, str] = ("br-wind", "br-two")
    booted: Callable[[Driver, str, Path], None] | None = None


def tiny_spec(name: str, tmp: Path, bridge: str = "br-wind", **overrides: Any) -> VMSpec:
    """A 1-vcpu, 64 MiB VM with one bridged NIC, labels and a console log."""
    fields: dict[str, Any] = dict(
        name=name, vcpus=1, memory_mb=64, disk_gb=1,
        nics=(NicSpec("tenant-net", bridge=bridge),),
        metadata={"tenant": "acme", "app": "shop", "component": "web"},
        console_log=str(tmp / f"{name}.console.log"),
    )
    fields.update(overrides)
    return VMSpec(**fields)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)  # polling interval of a condition wait with a deadline


def _sim_crash(driver: Driver, name: str) -> None:
    assert isinstance(driver, SimDriver)
    driver.hypervisor.crash(name)


def _sim_drop(driver: Driver) -> None:
    assert isinstance(driver, SimDriver)
    driver.hypervisor.drop_connections()


BACKENDS: list[Any] = [
    pytest.param(Backend(make=lambda tmp: SimDriver(name="sim", hosts=2, host_cpus=8, host_memory_mb=4096),
                         crash=_sim_crash, drop_connection=_sim_drop), id="sim"),
    pytest.param(Backend(make=lambda tmp: SimDriver(
        name="sim-minimal", hosts=1, host_cpus=4, host_memory_mb=2048,
        capabilities={"suspend": False, "reboot": False, "snapshots": False, "console": False,
                      "nic_attach": False, "push_events": True}),
        crash=_sim_crash, drop_connection=_sim_drop), id="sim-minimal"),
    pytest.param(Backend(make=lambda tmp: LibvirtDriver(uri=f"test://{HOSTS_DIR / 'small.xml'}",
                                                        name="libvirt-test")), id="libvirt-test"),
]


# --- helper D: the cloud driver on moto's EC2 emulator, and libvirt on real QEMU -----------------

_moto: Any = None


def _moto_url() -> str:
    """One moto_server per test process, started on first use and stopped (by PID) at exit."""
    global _moto
    if _moto is None:
        import atexit

        from drivers.testing.daemons import MotoServer

        _moto = MotoServer.start()
        atexit.register(_moto.stop)
    return _moto.url


def _ec2_driver(tmp: Path) -> Driver:
    from drivers.cloud import LibcloudDriver

    # A driver name per test keeps tests apart on the shared emulator: a driver
    # only sees instances tagged with its own name.
    return LibcloudDriver(provider="ec2", name=f"ec2-{tmp.name}"[:60], region="us-east-1", endpoint=_moto_url(),
                          key="AKIDWINDTEST", secret="wind-test-secret", image="ami-1e749f67",
                          image_owner="amazon", capacity={"cpus": 8, "memory_mb": 32768, "disk_gb": 500},
                          poll_interval=0.2)


def _cloud_cleanup(driver: Driver) -> None:
    driver.connect()  # some tests close the driver
    for vm in driver.list():
        if vm.state.is_active:
            driver.destroy(vm.name)
        driver.undefine(vm.name)


BACKENDS.append(pytest.param(Backend(make=_ec2_driver, cleanup=_cloud_cleanup), id="cloud-ec2-moto"))


# --- libvirt on real QEMU (TCG) under libvirtd: the slow set, as root -------------------------------

# Bridges of our own, named per process (at most 15 characters), so a concurrent run or the
# host's own bridges are never touched; created in the root namespace, removed by name.
QEMU_BRIDGES = (f"wq{os.getpid() % 100000}a", f"wq{os.getpid() % 100000}b")
GUEST_DIR = Path("/var/tmp/wind-guest")  # world-traversable: QEMU runs as libvirt-qemu
_disks: list[Path] = []


def _qemu_prepare() -> Callable[[], None]:
    """Start libvirtd (unless it runs) and create the suite's bridges; undo both afterwards."""
    from pyroute2 import IPRoute

    from drivers.testing.daemons import ensure_libvirtd
    from drivers.testing.guest import build_guest

    handle = ensure_libvirtd()  # leaves a running libvirtd alone; its stop() stops only what it started
    build_guest()  # once, before the first define (cached between runs)
    created = []
    with IPRoute() as ipr:
        for name in QEMU_BRIDGES:
            if not ipr.link_lookup(ifname=name):
                ipr.link("add", ifname=name, kind="bridge")
                created.append(name)
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")

    def undo() -> None:
        with IPRoute() as ipr:
            for name in created:
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)
        handle.stop()

    return undo


def _qemu_driver(tmp: Path) -> Driver:
    return LibvirtDriver(uri="qemu:///system", name=f"qemu-{tmp.name}"[:60], domain_type="qemu",
                         cpus=2, memory_mb=1024)


def _qemu_spec(name: str, tmp: Path) -> VMSpec:
    """The tiny Debian-kernel guest, with a qcow2 disk (so it can take an internal snapshot) and a NIC."""
    import subprocess

    from drivers.testing.guest import build_guest

    guest = build_guest()
    for sub in ("console", "disks"):
        (GUEST_DIR / sub).mkdir(parents=True, exist_ok=True)
    # Unique names: qemu:///system is shared by every test (and by anyone else on the host).
    disk = GUEST_DIR / "disks" / f"{tmp.name}-{name}.qcow2"
    if not disk.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
        _disks.append(disk)
    # 128 MiB: the Debian kernel and its initramfs do not boot in 64.
    return VMSpec(name=name, vcpus=1, memory_mb=128, disk_gb=1, image=str(disk), kernel=str(guest.kernel),
                  initrd=str(guest.initrd), cmdline=guest.cmdline,
                  nics=(NicSpec("tenant-net", bridge=QEMU_BRIDGES[0]),),
                  metadata={"tenant": "acme", "app": "shop", "component": "web"},
                  console_log=str(GUEST_DIR / "console" / f"{tmp.name}-{name}.log"))


def _qemu_booted(driver: Driver, name: str, tmp: Path) -> None:
    from drivers.testing.guest import wait_for_marker

    wait_for_marker(_qemu_spec(name, tmp).console_log or "", timeout=90)


def _qemu_crash(driver: Driver, name: str) -> None:
    """Kill the guest's QEMU process (by its PID file): the hypervisor process failed."""
    import signal

    pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)


def _qemu_cleanup(driver: Driver) -> None:
    driver.connect()
    for vm in driver.list():
        if vm.name.startswith(("vm-", "big-", "huge")):
            if vm.state.is_active:
                driver.destroy(vm.name)
            driver.undefine(vm.name)
    while _disks:
        _disks.pop().unlink(missing_ok=True)


BACKENDS.append(pytest.param(
    Backend(make=_qemu_driver, spec=_qemu_spec, cleanup=_qemu_cleanup, timeout=60, prepare=_qemu_prepare,
            bridges=QEMU_BRIDGES, booted=_qemu_booted, crash=_qemu_crash),
    id="libvirt-qemu",
    marks=[pytest.mark.slow, pytest.mark.root,
           pytest.mark.skipif(os.geteuid() != 0, reason="real QEMU under qemu:///system needs root")]))
