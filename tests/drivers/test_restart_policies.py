"""Restart policies on every driver that runs here (issue "crash windows and restart policies").

One application of one VM, pinned to the cluster's only site, is deployed with each restart
policy through an in-process ``wind_actors.cluster.Cluster`` (controller and agent on their own
nodes, over ZeroMQ with CURVE). Then the VM is stopped behind Wind's back over a *second*
connection to the same backend, as an operator's console would:

* ``sim``: a second ``SimDriver`` on the same simulated hypervisor (``endpoint``);
* ``libvirt``: a second libvirt connection to ``test:///default``, which every connection of a
  process shares, lifecycle events included (a ``test:///host.xml`` URI would not: each connect
  opens a fresh host);
* ``ec2``: libcloud's own EC2 driver against moto (``moto_server`` on 127.0.0.1), stopping the
  instance as the AWS console does; Wind's driver hears of it by polling.

What each policy does with a VM that was destroyed (a failure): ``always`` and ``on-failure``
bring it back, ``never`` leaves it stopped. A clean power-off from inside the guest is not a
failure: only ``always`` brings it back. libvirt and the simulator tell the two apart by the
stop event's reason; a cloud cannot (EC2 reports every stop as ``stopped``, whoever asked), so
there every stop Wind did not ask for counts as a failure, and the clean-shutdown case does not
apply to ``ec2``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import libvirt
import pytest

from drivers.sim import SimDriver, SimHypervisor
from drivers.testing.daemons import MotoServer
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.testing import wait_for

TOKEN = "acme-restart-policies-token-0123456789"
POLICIES = ("always", "on-failure", "never")
#: Which policies bring a VM back after each kind of stop.
RESTARTS = {"destroyed": {"always", "on-failure"}, "shut down": {"always"}}
EC2 = {"provider": "ec2", "region": "us-east-1", "key": "AKIDWINDTEST", "secret": "wind-test-secret",
       "image": "ami-1e749f67", "capacity": {"cpus": 8, "memory_mb": 32768, "disk_gb": 500},
       "poll_interval": 0.2}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer.start() as server:
        yield server


# -- the backends, and how to stop a VM behind Wind's back on each ----------------------------------


@dataclass
class Backend:
    """One driver under test: its site, the image its VMs boot, and a second connection to its
    backend (``destroy``, ``shutdown``: stop a VM through it; ``close`` it)."""

    site: SiteSpec
    image: str
    destroy: Callable[[str], None]
    shutdown: Callable[[str], None] | None
    close: Callable[[], None]


def sim_backend(_: Any) -> Backend:
    endpoint = f"restart-sim-{uuid.uuid4().hex[:8]}"
    site = SiteSpec("sim", "sim", {"endpoint": endpoint, "hosts": 1}, report_interval=0.2)
    outsider = SimDriver(name="outsider", endpoint=endpoint)
    outsider.connect()

    def close() -> None:
        outsider.close()
        SimHypervisor.forget(endpoint)

    return Backend(site, "web", outsider.destroy, outsider.shutdown, close)


def libvirt_backend(_: Any) -> Backend:
    site = SiteSpec("libvirt", "libvirt", {"uri": "test:///default", "name": "libvirt-restart"},
                    report_interval=0.2)
    outsider = libvirt.open("test:///default")
    return Backend(site, "web", lambda vm: outsider.lookupByName(vm).destroy(),
                   lambda vm: outsider.lookupByName(vm).shutdown(), outsider.close)


def ec2_backend(moto: MotoServer) -> Backend:
    from drivers.cloud._config import CloudConfig
    from drivers.cloud._providers import build_node_driver

    # The driver name keeps this test's instances apart on the shared emulator.
    site = SiteSpec("ec2", "libcloud", {**EC2, "endpoint": moto.url, "name": f"ec2-{uuid.uuid4().hex[:8]}"},
                    report_interval=0.2)
    console = build_node_driver(CloudConfig.from_kwargs("ec2", region="us-east-1", endpoint=moto.url,
                                                        key="AKIDX", secret="whatever"))

    def stop(vm: str) -> None:
        console.stop_node(next(n for n in console.list_nodes() if n.name == vm and n.state != "terminated"))

    return Backend(site, EC2["image"], stop, None, lambda: None)


BACKENDS = {"sim": sim_backend, "libvirt": libvirt_backend, "ec2": ec2_backend}


@pytest.fixture
def backend(request: pytest.FixtureRequest, moto: MotoServer) -> Iterator[Backend]:
    made = BACKENDS[request.param](moto)
    yield made
    made.close()


@pytest.fixture
def cluster(backend: Backend) -> Iterator[Cluster]:
    with Cluster.start([backend.site], tenants={"acme": TOKEN}, tick=0.1, site_timeout=3.0) as running:
        yield running


# -- helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def deployed(cluster: Cluster, backend: Backend) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Deploys one VM with a restart policy; undeploys it afterwards (the libvirt test driver's
    state outlives the cluster: it is the process's)."""
    wind = cluster.client("acme")
    apps: list[str] = []

    def deploy(policy: str) -> dict[str, Any]:
        app = f"{policy}-{uuid.uuid4().hex[:6]}"
        wind.deploy({"tenant": "acme", "application": app, "placement": {"policy": "spread"},
                     "components": {"web": {"image": backend.image, "vcpus": 1, "memory_mb": 64, "count": 1,
                                            "restart": policy,
                                            "placement": {"where": {"sites": [backend.site.name]}}}}},
                    timeout=60)
        apps.append(app)
        return {"app": app, **wind.status(app)["vms"][0]}

    yield deploy
    for app in apps:
        wind.undeploy(app)


def vm_row(cluster: Cluster, app: str) -> dict[str, Any]:
    return cluster.client("acme").status(app)["vms"][0]


def actor_of(cluster: Cluster, site: str, vm: str) -> Any:
    return cluster.agents[site].ctx.vm_ref(vm)


def assert_brought_back(cluster: Cluster, vm: dict[str, Any]) -> None:
    """Its VM actor failed, was restarted by its supervisor and started the VM again."""
    back = wait_for(f"{vm['name']} running again after a restart", lambda: (lambda row: row if (
        row["state"] == "running" and row["restarts"] >= 1) else None)(vm_row(cluster, vm["app"])), 30)
    assert back["site"] == vm["site"]


def assert_left_stopped(cluster: Cluster, vm: dict[str, Any], actor: Any) -> None:
    """The VM actor that owns the VM saw it stop and stays, holding it stopped: it did not fail,
    so its supervisor has nothing to restart, and the site refuses a second actor for the VM."""
    described = wait_for(f"{vm['name']} seen stopped by its actor", lambda: (lambda d: d if d["state"] in (
        "crashed", "shutoff") else None)(actor.ask("describe", timeout=10)), 30)
    assert described["restarts"] == 0 and actor.is_alive()
    assert actor_of(cluster, vm["site"], vm["name"]) is actor
    wait_for(f"the controller to see {vm['name']} stopped",
             lambda: vm_row(cluster, vm["app"])["state"] in ("crashed", "shutoff"), 30)
    assert cluster.agents[vm["site"]].ctx.restarts(vm["name"]) == 0


# -- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend, policy", [(b, p) for b in BACKENDS for p in POLICIES],
                         ids=[f"{b}-{p}" for b in BACKENDS for p in POLICIES], indirect=["backend"])
def test_a_vm_destroyed_behind_winds_back_comes_back_unless_its_policy_is_never(
        cluster, backend, deployed, policy):
    vm = deployed(policy)
    actor = actor_of(cluster, vm["site"], vm["name"])
    backend.destroy(vm["name"])
    if policy in RESTARTS["destroyed"]:
        assert_brought_back(cluster, vm)
    else:
        assert_left_stopped(cluster, vm, actor)


@pytest.mark.parametrize("backend, policy", [(b, p) for b in ("sim", "libvirt") for p in POLICIES],
                         ids=[f"{b}-{p}" for b in ("sim", "libvirt") for p in POLICIES], indirect=["backend"])
def test_a_vm_shut_down_cleanly_comes_back_only_under_always(cluster, backend, deployed, policy):
    """Not for ``ec2``: a cloud reports a stop from inside the guest exactly as one from its
    console, so Wind counts both as failures there (the test above covers it)."""
    vm = deployed(policy)
    actor = actor_of(cluster, vm["site"], vm["name"])
    backend.shutdown(vm["name"])
    if policy in RESTARTS["shut down"]:
        assert_brought_back(cluster, vm)
    else:
        assert_left_stopped(cluster, vm, actor)
