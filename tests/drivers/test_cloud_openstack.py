"""The cloud driver (libcloud's OpenStack driver) against the mimic emulator on loopback.

mimic runs in its own venv (it needs attrs<24; see drivers.testing.daemons). It
implements Keystone v2 and Nova create/list/reboot/delete but not os-stop,
os-start, suspend or pause, so this endpoint is configured with
``power_off="delete"`` and ``capabilities={"suspend": False}``: exactly what
the driver offers for a provider that cannot stop instances.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from drivers import EventKind, VMEvent, VMSpec, VMState, errors
from drivers.cloud import LibcloudDriver
from drivers.testing.daemons import MimicServer

IMAGE = "Windows Server 2012 R2"  # a name from mimic's image catalog (its ids are random per run)


@pytest.fixture(scope="module")
def mimic() -> Iterator[MimicServer]:
    with MimicServer.start() as server:
        yield server


@pytest.fixture
def driver(mimic: MimicServer, request: pytest.FixtureRequest) -> Iterator[LibcloudDriver]:
    drv = LibcloudDriver(
        provider="openstack", name=request.node.name[:50], region="ORD", endpoint=f"{mimic.url}/identity",
        key="wind", secret="wind-openstack-password", image=IMAGE, power_off="delete",
        capabilities={"suspend": False},
        extra={"ex_tenant_name": "wind-tenant", "ex_force_service_name": "cloudServersOpenStack"},
        capacity={"cpus": 8, "memory_mb": 16384, "disk_gb": 400}, poll_interval=0.1)
    drv.connect()
    yield drv
    drv.close()


def test_a_vm_walks_its_whole_lifecycle_on_openstack(driver: LibcloudDriver) -> None:
    got: queue.Queue[VMEvent] = queue.Queue()
    driver.subscribe(got.put)
    driver.define(VMSpec("os-1", 1, 512, disk_gb=10, metadata={"tenant": "acme", "app": "shop"}))
    driver.start("os-1")
    info = driver.info("os-1")
    assert info.state is VMState.RUNNING and info.id
    assert dict(info.metadata) == {"tenant": "acme", "app": "shop"}
    assert (info.vcpus, info.memory_mb, info.disk_gb) == (1, 512, 10)
    driver.reboot("os-1")
    driver.shutdown("os-1")
    assert driver.info("os-1").state is VMState.SHUTOFF  # the instance is gone, the VM is not
    driver.start("os-1")  # re-created from the kept spec
    assert dict(driver.info("os-1").metadata) == {"tenant": "acme", "app": "shop"}
    driver.destroy("os-1")
    driver.undefine("os-1")
    assert driver.list() == []
    kinds = [got.get(timeout=5).kind for _ in range(6)]
    assert kinds == [EventKind.DEFINED, EventKind.STARTED, EventKind.STOPPED, EventKind.STARTED,
                     EventKind.STOPPED, EventKind.REMOVED]


def test_the_flavor_is_the_smallest_that_fits_disk_included(driver: LibcloudDriver) -> None:
    driver.define(VMSpec("os-2", 1, 600, disk_gb=30))
    driver.start("os-2")
    node = next(n for n in driver._api.list_nodes() if n.name == "os-2")
    flavor = next(s for s in driver._api.list_sizes() if s.id == node.extra["flavorId"])
    assert flavor.ram >= 600 and flavor.disk >= 30 and flavor.vcpus >= 1
    smaller = [s for s in driver._api.list_sizes() if 600 <= s.ram < flavor.ram and s.disk >= 30]
    assert smaller == []


def test_suspend_is_declared_unsupported_here_and_raises_not_supported(driver: LibcloudDriver) -> None:
    driver.define(VMSpec("os-3", 1, 256))
    driver.start("os-3")
    with pytest.raises(errors.NotSupported):
        driver.suspend("os-3")
    assert driver.info("os-3").state is VMState.RUNNING
    driver.destroy("os-3")
    driver.undefine("os-3")
