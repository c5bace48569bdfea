"""Controller work follows change: an idle cloud costs the controller no store reads and no
reconciliation passes per tick; a change reconciles exactly the application it concerns."""

from __future__ import annotations

import pytest

from wind_actors.agent._overlay import OVERLAY_PLANNER
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.controller._controller import _Tick
from wind_actors.controller._overlay import _Tick as _PlannerTick
from wind_actors.testing import wait_for

TOKENS = {"acme": "acme-token-0123456789"}


def _app(name: str, count: int) -> dict:
    return {"tenant": "acme", "application": name,
            "components": {"web": {"image": "x", "vcpus": 1, "memory_mb": 64, "count": count}}}


@pytest.fixture
def cluster():
    sites = [SiteSpec(s, "sim", {"hosts": 4}, report_interval=0.2) for s in ("dc-1", "dc-2")]
    with Cluster.start(sites, tenants=TOKENS, tick=0.1) as running:
        client = running.client("acme")
        client.deploy(_app("web", 3))
        client.deploy(_app("api", 2))
        yield running


def _settled(cluster: Cluster):
    """The controller actor once no application has work under way."""
    ctl = cluster.controller_node.whereis("controller")
    wait_for("every application to settle", lambda: not ctl.proxy().busy_apps().get(), 10)
    # A VM's row is complete (its driver id too) once a slow report after its start came in;
    # until then that report is still a change to reconcile.
    wait_for("every VM's full row", lambda: all(
        "id" in row for rows in ctl.proxy().site_rows().get().values() for row in rows.values()), 10)
    ctl.tell(_Tick())  # the apps that report concerned are told on this tick ...
    ctl.ask("flushed")
    for ref in ctl.proxy().apps.get().values():
        ref.ask("flushed")  # ... and have reconciled once this returns
    wait_for("every application to settle", lambda: not ctl.proxy().busy_apps().get(), 10)
    return ctl


def _ticks(ctl, planner, n: int) -> None:
    """Tick the controller and the planner ``n`` times, and wait until they ran (FIFO inboxes)."""
    for _ in range(n):
        ctl.tell(_Tick())
        planner.tell(_PlannerTick())
    ctl.ask("flushed")
    planner.ask("flushed")


def test_an_idle_controller_reads_nothing_and_reconciles_no_application(cluster):
    ctl = _settled(cluster)
    planner = cluster.controller_node.whereis(OVERLAY_PLANNER)
    apps = ctl.proxy().apps.get()
    _ticks(ctl, planner, 11)  # the lost-site scan reads once after the deploys' writes
    passes = {key: ref.proxy().passes.get() for key, ref in apps.items()}
    reads = cluster.controller.store.reads
    _ticks(ctl, planner, 30)
    for ref in apps.values():
        ref.ask("flushed")  # any Reconcile the ticks told is handled before this
    assert {key: ref.proxy().passes.get() for key, ref in apps.items()} == passes
    assert cluster.controller.store.reads == reads


def test_a_vm_change_reconciles_only_its_application(cluster):
    ctl = _settled(cluster)
    apps = ctl.proxy().apps.get()
    passes = {key: ref.proxy().passes.get() for key, ref in apps.items()}
    client = cluster.client("acme")
    client.kill_instance("web", "web-0")  # its agent restarts it: its state changes twice
    wait_for("web to be reconciled", lambda: apps[("acme", "web")].proxy().passes.get() > passes[("acme", "web")], 10)
    wait_for("web-0 to run again", lambda: client.status("web")["running"] == 3, 20)
    assert apps[("acme", "api")].proxy().passes.get() == passes[("acme", "api")]


def test_the_safety_pass_reconciles_every_application(cluster):
    ctl = _settled(cluster)
    apps = ctl.proxy().apps.get()
    passes = {key: ref.proxy().passes.get() for key, ref in apps.items()}
    ctl.proxy().reconcile_interval = 0.0  # the next tick is a safety pass
    planner = cluster.controller_node.whereis(OVERLAY_PLANNER)
    _ticks(ctl, planner, 1)
    for ref in apps.values():
        ref.ask("flushed")
    assert all(ref.proxy().passes.get() > passes[key] for key, ref in apps.items())
