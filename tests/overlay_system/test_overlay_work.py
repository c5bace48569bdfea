"""The overlay planner's work follows change, not size: counted on a real planner actor and store.

Three sites (a, b, c) join through overlay reports from stand-in agents that record what they
are pushed. Applications are written to the store as a deploy writes them and the planner is
told which changed (``Replan(apps)``, as the controller does). Counted: networks re-planned,
sites pushed, NIC tables written and store reads. A change to network X re-plans X only and
pushes X's sites only; VM state changes and applications without networks cost nothing; a
write the planner was not told of is found by the safety pass; and what it kept incrementally
equals a full plan of the store.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from overlay import plan
from wind_actors.agent._overlay import OverlayPush, OverlayReport
from wind_actors.controller._overlay import (OverlayPlanner, Replan, _Tick, nic_tables, overlay_nics,
                                             plan_inputs)
from wind_actors.controller._overlay_nics import nics_key
from wind_actors.services import Store, VMRecord, parse_descriptor, vm_name

SITES = {"a": "192.0.2.1", "b": "192.0.2.2", "c": "192.0.2.3"}


class StandInAgent:
    """An agent's overlay actor ref: records the pushes it is told."""

    def __init__(self, site: str) -> None:
        self.node_name = f"agent@{site}"
        self.pushes: list[OverlayPush] = []

    def tell(self, msg) -> None:
        if isinstance(msg, OverlayPush):
            self.pushes.append(msg)


class StandInNode:
    """What the planner uses of its node."""

    name = "controller@test"

    def __init__(self, max_frame_bytes: int = 1 << 20) -> None:
        self.config = SimpleNamespace(max_frame_bytes=max_frame_bytes)
        self.registered: dict = {}
        self.refused: list = []

    def register(self, name, ref, access=None):
        self.registered[name] = ref
        return ref

    def whereis(self, name):
        return self.registered.get(name)

    def refuse(self, *args, **kw) -> None:
        self.refused.append((args, kw))


def descriptor(tenant: str, app: str, network: str | None, count: int) -> dict:
    comp = {"image": "x", "vcpus": 1, "memory_mb": 64, "count": count}
    doc = {"tenant": tenant, "application": app, "components": {"web": comp}}
    if network is not None:
        comp["networks"] = [network]
        doc["networks"] = {network: {"cidr": "10.9.0.0/16"}}
    return doc


def deploy(store: Store, tenant: str, app: str, network: str | None, sites: list[str]) -> None:
    """Write an application and its VM records as the controller's deploy does."""
    records = [VMRecord(vm_name(tenant, app, f"web-{i}"), tenant, app, f"web-{i}", "web", site)
               for i, site in enumerate(sites)]
    store.begin_deploy(tenant, app, descriptor(tenant, app, network, len(sites)), {"slots": []}, records)


class Harness:
    def __init__(self, tmp_path, max_frame_bytes: int = 1 << 20) -> None:
        self.store = Store(tmp_path / "wind.db")
        self.node = StandInNode(max_frame_bytes)
        self.agents = {s: StandInAgent(s) for s in SITES}
        self.start()

    def start(self) -> None:
        self.ref = OverlayPlanner.start(self.node, self.store, interval=3600.0, resync_interval=3600.0)
        self.planner = self.ref.proxy()
        for site, ip in SITES.items():
            self.report(site, ip)

    def report(self, site: str, ip: str | None, held: tuple = (None, None)) -> None:
        agent = self.agents[site]
        self.ref.ask(OverlayReport(site, agent, f"tcp://{site}:1", ip, held[0], held[1], held == (None, None)))

    def settle(self) -> None:
        """Every site reports that it holds what it was last pushed."""
        for site, ip in SITES.items():
            pushes = self.agents[site].pushes
            if pushes:
                self.report(site, ip, (pushes[-1].epoch, pushes[-1].generation))

    def replan(self, *apps: tuple[str, str]) -> dict:
        return self.ref.ask(Replan(tuple(apps)))

    def stats(self) -> dict:
        return self.planner.stats.get()

    def pushed(self) -> dict[str, int]:
        return {s: len(a.pushes) for s, a in self.agents.items()}

    def stop(self) -> None:
        self.ref.stop()


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.stop()
    harness.store.close()


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before.get(k)}


def test_a_change_on_network_x_replans_only_x_and_pushes_only_its_sites(h):
    deploy(h.store, "acme", "web", "front", ["a", "b"])
    deploy(h.store, "acme", "db", "back", ["c"])
    h.replan(("acme", "web"), ("acme", "db"))
    h.settle()
    stats, pushed = h.stats(), h.pushed()

    # Another application of the tenant joins network "front" (shared) with a VM at site b.
    deploy(h.store, "acme", "cache", "front", ["b"])
    reply = h.replan(("acme", "cache"))
    assert reply["networks"] == 1 and sorted(reply["sites_pushed"]) == ["a", "b"]
    assert delta(pushed, h.pushed()) == {"a": 1, "b": 1}  # c has no NIC on "front": nothing
    assert delta(stats, h.stats()) == {"plans": 1, "networks_planned": 1, "tables_written": 1,
                                       "sites_pushed": 2, "parts_sent": 2}
    assert all(p.base is not None for s in "ab" for p in h.agents[s].pushes[-1:])  # diffs, not states

    # Its undeploy re-plans "front" again, pushes a and b, and deletes only its NIC table.
    h.settle()
    stats, pushed = h.stats(), h.pushed()
    h.store.finish_undeploy("acme", "cache", h.store.begin_undeploy("acme", "cache").id, {})
    reply = h.replan(("acme", "cache"))
    assert reply["networks"] == 1 and sorted(reply["sites_pushed"]) == ["a", "b"]
    assert delta(stats, h.stats())["tables_written"] == 1
    assert h.store.get_overlay(nics_key("acme", "cache")) is None
    assert set(overlay_nics(h.store, "acme", "web")) == {"acme.web.web-0", "acme.web.web-1"}


def test_vm_state_changes_and_apps_without_networks_cost_the_overlay_nothing(h):
    deploy(h.store, "acme", "web", "front", ["a", "b"])
    h.replan(("acme", "web"))
    h.settle()
    stats, pushed, reads = h.stats(), h.pushed(), h.store.reads

    for state in ("starting", "running", "stopped", "running"):  # what an app actor writes
        h.store.update_vms([(vm_name("acme", "web", f"web-{i}"), {"state": state}) for i in range(2)])
    for _ in range(20):
        h.ref.tell(_Tick())
    h.ref.ask("flushed")
    assert h.store.reads == reads and h.stats() == stats and h.pushed() == pushed

    # An application with no networks: the controller does not even tell the planner; told,
    # it reads the application's record only (not its VMs) and plans nothing.
    deploy(h.store, "acme", "batch", None, ["a", "b", "c"])
    reads = h.store.reads
    reply = h.replan(("acme", "batch"))
    assert reply["networks"] == 0 and reply["sites_pushed"] == []
    assert h.store.reads == reads + 1
    assert h.stats() == stats and h.pushed() == pushed


def test_the_safety_pass_finds_a_write_it_was_not_told_of_and_otherwise_changes_nothing(h):
    deploy(h.store, "acme", "web", "front", ["a", "b"])
    deploy(h.store, "acme", "db", "back", ["c"])
    h.replan(("acme", "web"), ("acme", "db"))
    h.settle()
    h.planner.resync_interval = 0.0
    stats = h.stats()
    h.ref.tell(_Tick())  # the store was written since the start: a full re-read, nothing differs
    h.ref.ask("flushed")
    assert delta(stats, h.stats()) == {"resyncs": 1}
    h.ref.tell(_Tick())  # no write since: not even a re-read
    h.ref.ask("flushed")
    assert delta(stats, h.stats()) == {"resyncs": 1}

    # A VM of db moved from c to b behind the planner's back.
    rec = h.store.get_application("acme", "db")
    moved = [VMRecord(r.name, r.tenant, r.app, r.instance, r.component, "b") for r in h.store.vms("acme", "db")]
    h.store.put_application("acme", "db", rec.descriptor, rec.placement, moved, state=rec.state)
    pushed = h.pushed()
    h.ref.tell(_Tick())
    h.ref.ask("flushed")
    assert delta(stats, h.stats())["networks_planned"] == 1
    assert delta(pushed, h.pushed()) == {"b": 1, "c": 1}
    assert [e["ip"] for e in overlay_nics(h.store, "acme", "db")["acme.db.web-0"]] == ["10.9.0.1"]


def test_what_it_keeps_incrementally_equals_a_full_plan_and_survives_a_restart(h):
    deploy(h.store, "acme", "web", "front", ["a", "b", "c"])
    h.replan(("acme", "web"))
    deploy(h.store, "acme", "api", "front", ["c"])
    h.replan(("acme", "api"))
    deploy(h.store, "globex", "web", "front", ["a"])  # another tenant's network of the same name
    h.replan(("globex", "web"))
    h.store.finish_undeploy("acme", "web", h.store.begin_undeploy("acme", "web").id, {})
    h.replan(("acme", "web"))

    apps = [parse_descriptor(r.descriptor, allow_unsupported=True)
            for r in sorted(h.store.list_applications(), key=lambda r: r.created)]
    macs = {(t, e["network"], vm): e["mac"] for t, a in (("acme", "api"), ("globex", "web"))
            for vm, entries in overlay_nics(h.store, t, a).items() for e in entries}
    inputs = plan_inputs(apps, h.store.vms(), SITES, macs)
    full = plan(inputs.sites, inputs.networks, inputs.nics, previous=h.planner.plan.get().allocations)
    assert full == h.planner.plan.get()
    for key, table in nic_tables(full, inputs).items():
        assert overlay_nics(h.store, *key) == table

    before = {k: overlay_nics(h.store, *k) for k in (("acme", "api"), ("globex", "web"))}
    h.stop()
    h.start()  # a new planner on the same store: the same VNIs, addresses and MACs, nothing rewritten
    assert h.stats()["tables_written"] == 0
    assert {k: overlay_nics(h.store, *k) for k in before} == before
    assert h.planner.plan.get().networks == full.networks
