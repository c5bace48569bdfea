"""The controller's part of the overlay: plan every site's overlay from the desired state, push
the changes to the agents, and hand VMs their NICs.

:class:`OverlayPlanner` (registered as ``overlay`` on the controller node) builds the planner's
input from the store — every stored application's tenant networks (``networks:`` in the
descriptor; a network is the tenant's, shared by the tenant's applications), every placed VM's
NICs (one per network its component lists) and every site that reported an ``underlay_ip`` —
calls :func:`overlay.plan` with the persisted allocations (so VNIs, addresses and MACs are stable
across controller restarts), and pushes each changed site its :class:`~overlay.SiteDiff` (or its
full state when the agent is not at the diff's base) as :class:`OverlayPush` messages. It
re-plans when asked (:func:`replan_now`, on every deploy, before the VMs are started), when a
site appears or changes its underlay address, and every ``interval`` seconds (undeploys, VMs
moved). Agents that report a state behind the planner's get the full state again.

What it persists (``Store.put_overlay``): ``overlay/allocations`` (:class:`overlay.Allocations`),
``overlay/sites`` (``{site: underlay_ip}``) and ``overlay/nics/TENANT/APP`` (``{vm: [nic]}``, a
nic being ``{"network", "mac", "bridge", "ip", "prefixlen"}``). The last one is what
:func:`attach_nics` puts into VM specs (MAC and attach-point bridge) and what
:func:`add_overlay_addresses` shows in ``wind app status``.

Removing a site (``wind sites remove``; :class:`RemoveSiteFromPlan`, asked by the controller)
takes it out of the plan: the other sites get the diff (their flood and FDB entries towards it
go), and its agent, if it is reachable, is pushed an empty state, which its realizer applies by
deleting every Wind device and nothing else. The planner ignores the removed agent incarnation's
reports from then on (:class:`~wind_actors.controller._removed.RemovedSites`) except to push the
empty state again until the agent confirms it holds it; a later incarnation rejoins.

MACs are derived from a hash of (tenant, network, VM) with the locally-administered bit set,
re-drawn on a collision within a network, and then kept: a VM's MAC (and so its address) never
changes while it exists.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import structlog

from overlay import Allocations, Plan, SiteState, diff_plans, plan
from overlay.errors import OverlayError
from supervisors import WatchedActor
from wind_actors.agent._overlay import (OVERLAY_PLANNER, REPORT_INTERVAL, OverlayPeers, OverlayPush,
                                        OverlayReport, encode_diff, encode_state)
from wind_actors.agent._ticker import Ticker
from wind_actors.errors import Forbidden, WindError
from wind_actors.runtime import SYSTEM, identity_of
from wind_actors.services import AppDescriptor, Store, parse_descriptor

from ._overlay_nics import (PlanInputs, add_overlay_addresses, attach_nics, nic_mac, nic_tables, nics_key,
                            overlay_nics, plan_inputs)
from ._probes import probe_peers
from ._removed import RemovedSites

__all__ = [
    "OverlayPlanner", "RemoveSiteFromPlan", "Replan", "add_overlay_addresses", "attach_nics", "nic_mac", "overlay_nics",
    "replan_now", "plan_inputs",
]

_log = structlog.get_logger("wind.controller.overlay")

ALLOCATIONS_KEY = "overlay/allocations"
SITES_KEY = "overlay/sites"

#: Seconds a site may stay behind the planner (a lost push) before it gets its full state again.
RESYNC_AFTER = 2.5 * REPORT_INTERVAL
#: Least seconds between two full-state pushes to one site that keeps asking for one.
FULL_STATE_EVERY = 0.5


@dataclass(frozen=True)
class Replan:
    """Ask the planner to re-plan now. Reply: ``{"generation", "sites_pushed", "plan_ms"}``."""


def replan_now(node: Any, timeout: float = 10.0) -> dict[str, Any] | None:
    """Have the controller node's planner re-plan and push before returning (deploy calls it, so
    a new VM's NICs are planned before its spec is sent). Returns its reply, or None if there is
    no planner running or it did not answer in time (its next tick re-plans anyway)."""
    ref = node.whereis(OVERLAY_PLANNER)
    if ref is None:
        return None
    try:
        return ref.ask(Replan(), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a deploy must not fail because the overlay lags
        _log.warning("overlay.replan_failed", error=str(exc))
        return None


@dataclass(frozen=True)
class RemoveSiteFromPlan:
    """Asked by the controller when a site is removed (after recording its tombstone).

    The planner marks the operation ``op`` done, with ``detail`` ``{"site", "agent",
    "teardown"}``; ``teardown`` becomes ``confirmed`` once the agent reports the empty state.

    Reply: ``{"agent": "notified" | "unreachable", "sites_pushed": [site]}``: whether the site's
    agent was sent its empty state, and which other sites were pushed their diff.
    """

    site: str
    op: str


# -- the planner actor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tick:
    pass


class _Retired:
    """A removed site whose agent is being torn down (planner thread only)."""

    __slots__ = ("agent", "generation", "underlay_ip", "last_push", "confirmed")

    def __init__(self, agent: _Agent | None, generation: int, underlay_ip: str) -> None:
        self.agent, self.generation, self.underlay_ip = agent, generation, underlay_ip
        self.last_push = float("-inf")
        self.confirmed = False


class _Agent:
    """What the planner knows of one site's agent (planner thread only)."""

    __slots__ = ("ref", "node", "address", "held", "expected", "last_push", "last_full")

    def __init__(self, ref: Any, address: str) -> None:
        self.ref, self.node, self.address = ref, ref.node_name, address
        self.held: tuple[str | None, int | None] = (None, None)   # (epoch, generation) it reported
        self.expected: int | None = None   # generation it will hold once our pushes arrive
        self.last_push = float("-inf")
        self.last_full = float("-inf")


class OverlayPlanner(WatchedActor):
    """The controller's overlay planner (see the module docstring).

    Args:
        node: the controller node.
        store: the desired-state store.
        interval: seconds between periodic re-plans.
        removed: the removed sites, shared with the controller (default: read from ``store``).
    """

    use_daemon_thread = True

    def __init__(self, node: Any, store: Store, interval: float = 1.0,
                 removed: RemovedSites | None = None) -> None:
        super().__init__()
        self.node, self.store, self.interval = node, store, interval
        self.removed = removed if removed is not None else RemovedSites(store)
        self._retired: dict[str, _Retired] = {}
        self.epoch = secrets.token_hex(4)
        self.plan: Plan | None = None
        self.generation: dict[str, int] = {}
        self.agents: dict[str, _Agent] = {}
        self.sites: dict[str, str] = {}
        self._macs: dict[tuple[str, str, str], str] = {}
        self._inputs: PlanInputs | None = None
        self._allocations = Allocations()
        self._descriptors: dict[tuple[str, str], tuple[float, AppDescriptor]] = {}
        self._tables: dict[tuple[str, str], dict[str, Any]] = {}
        self._ticker: Ticker | None = None
        self._stamp: tuple | None = None  # (store commits, sites) when last planned

    # -- hooks (actor thread) -----------------------------------------------------------------------

    def on_start(self) -> None:
        """Restore allocations, sites and MACs from the store, plan, and start re-planning."""
        data = self.store.get_overlay(ALLOCATIONS_KEY)
        if data:
            self._allocations = Allocations.from_dict(data)
        self.sites = dict(self.store.get_overlay(SITES_KEY, {}) or {})
        for rec in self.store.list_applications():
            table = overlay_nics(self.store, rec.tenant, rec.name)
            self._tables[(rec.tenant, rec.name)] = table
            for vm, entries in table.items():
                for e in entries:
                    self._macs[(rec.tenant, e["network"], vm)] = e["mac"]
        self.node.register(OVERLAY_PLANNER, self.actor_ref, access=SYSTEM)
        self._ticker = Ticker(self.actor_ref, self.interval, _Tick(), name="wind-overlay-planner")
        self.replan()
        _log.info("overlay.planner_started", epoch=self.epoch, sites=len(self.sites))

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    def on_receive(self, msg: Any) -> Any:
        if isinstance(msg, _Tick):
            self.replan()
            return None
        if isinstance(msg, OverlayReport):
            return self._on_agent_report(msg)
        if isinstance(msg, Replan):
            return self.replan(force=True)
        if isinstance(msg, RemoveSiteFromPlan):
            return self._remove_site(msg.site, msg.op)
        return None

    # -- planning -------------------------------------------------------------------------------------

    def _apps(self) -> list[AppDescriptor]:
        apps = []
        seen = set()
        for rec in sorted(self.store.list_applications(), key=lambda r: r.created):
            key = (rec.tenant, rec.name)
            seen.add(key)
            cached = self._descriptors.get(key)
            if cached is None or cached[0] != rec.updated:
                cached = self._descriptors[key] = (rec.updated, parse_descriptor(rec.descriptor,
                                                                                allow_unsupported=True))
            apps.append(cached[1])
        for key in [k for k in self._descriptors if k not in seen]:
            del self._descriptors[key]
        return apps

    def replan(self, force: bool = False) -> dict[str, Any]:
        """Re-plan from the store; persist and push what changed.

        Args:
            force: plan even when the inputs look unchanged (pushes only what differs anyway).

        Returns:
            ``{"generation": {site: n}, "sites_pushed": [...], "plan_ms"}``.
        """
        begin = time.perf_counter()
        # Nothing it plans from changed (no store write, no site change): nothing to re-plan, and
        # not even the store is read, so an idle controller's planner costs nothing.
        stamp = (self.store.commits, tuple(sorted(self.sites.items())))
        if not force and stamp == self._stamp and self.plan is not None:
            return {"generation": dict(self.generation), "sites_pushed": [], "plan_ms": 0.0}
        self._stamp = stamp
        try:
            inputs = plan_inputs(self._apps(), self.store.vms(), self.sites, self._macs)
        except WindError as exc:
            _log.error("overlay.inputs_failed", error=str(exc))
            self._stamp = None  # tried again on the next tick
            return {"generation": dict(self.generation), "sites_pushed": [], "plan_ms": 0.0}
        if not force and inputs == self._inputs and self.plan is not None:
            return {"generation": dict(self.generation), "sites_pushed": [], "plan_ms": 0.0}
        previous = self.plan.allocations if self.plan is not None else self._allocations
        try:
            new = plan(inputs.sites, inputs.networks, inputs.nics, previous=previous)
        except OverlayError as exc:
            # The last good plan stays realized; the error names the network or NIC at fault.
            _log.error("overlay.plan_failed", error=str(exc))
            return {"generation": dict(self.generation), "sites_pushed": [], "plan_ms": 0.0}
        plan_ms = (time.perf_counter() - begin) * 1000
        self._persist(new, inputs)
        changes = diff_plans(self.plan, new)
        old, self.plan, self._inputs = self.plan, new, inputs
        pushed = []
        for site, state in new.sites.items():
            change = changes.get(site)
            if change is None and site in self.generation:
                continue
            self.generation[site] = self.generation.get(site, 0) + 1
            if self._push(site, state, change if old is not None else None):
                pushed.append(site)
        if changes:
            _log.info("overlay.replanned", sites_changed=sorted(changes), plan_ms=round(plan_ms, 2))
        return {"generation": dict(self.generation), "sites_pushed": pushed, "plan_ms": plan_ms}

    def _persist(self, new: Plan, inputs: PlanInputs) -> None:
        allocations = new.allocations.to_dict()
        if self.plan is None or allocations != self.plan.allocations.to_dict():
            self.store.put_overlay(ALLOCATIONS_KEY, allocations)
        if self.store.get_overlay(SITES_KEY, {}) != self.sites:
            self.store.put_overlay(SITES_KEY, dict(self.sites))
        tables = nic_tables(new, inputs)
        for key in set(tables) | set(self._tables):
            table = tables.get(key, {})
            if table != self._tables.get(key):
                if table:
                    self.store.put_overlay(nics_key(*key), table)
                else:
                    self.store.delete_overlay(nics_key(*key))
        self._tables = tables

    # -- agents -----------------------------------------------------------------------------------------

    def _push(self, site: str, state: SiteState, change: Any) -> bool:
        """Send ``site`` generation ``self.generation[site]``: the diff when its agent will be at
        the diff's base, else the full state. Returns whether anything was sent."""
        agent = self.agents.get(site)
        if agent is None:
            return False
        gen = self.generation[site]
        now = time.monotonic()
        if change is not None and agent.expected == gen - 1:
            push = OverlayPush(site, self.epoch, gen, gen - 1, encode_diff(change))
        else:
            push = OverlayPush(site, self.epoch, gen, None, encode_state(state))
            agent.last_full = now
        try:
            agent.ref.tell(push)
        except WindError as exc:
            _log.warning("overlay.push_failed", site=site, error=str(exc))
            agent.expected = None
            return False
        agent.expected, agent.last_push = gen, now
        return True

    def _on_agent_report(self, msg: OverlayReport) -> None:
        """An agent's overlay report (a tell: bad content is dropped and counted, never a crash).

        The runtime checked that an agent of ``msg.site`` sent it; it must also name the
        sender's own node, or an agent could have pushes for its site sent elsewhere.
        """
        who = identity_of(self.sender)
        try:
            if not who.is_local and msg.agent.node_name != who.node:
                raise Forbidden(f"an overlay report of site {msg.site!r} names node "
                                f"{msg.agent.node_name!r} but came from {who.node!r}")
            self._on_report(msg)
        except Exception as exc:  # noqa: BLE001 - a peer's bad report must not crash the planner
            self.node.refuse("bad_report", peer=who.node, site=msg.site, kind="OverlayReport",
                             error=f"{type(exc).__name__}: {exc}")

    def _on_report(self, msg: OverlayReport) -> None:
        site = msg.site
        if not self.removed.admits(site, msg.agent.node_name, msg.started_at):
            self._on_retired_report(msg)
            return
        agent = self.agents.get(site)
        if agent is None or agent.ref != msg.agent or agent.address != msg.address:
            self._retired.pop(site, None)
            agent = self.agents[site] = _Agent(msg.agent, msg.address)
            _log.info("overlay.agent_joined", site=site, node=agent.node, underlay_ip=msg.underlay_ip)
        agent.held = (msg.epoch, msg.generation)
        if msg.error:
            _log.warning("overlay.agent_error", site=site, error=msg.error)
        self._share_peers(site, agent, msg.peers)
        if msg.underlay_ip != self.sites.get(site):
            if msg.underlay_ip is None:
                self.sites.pop(site, None)
            else:
                self.sites[site] = msg.underlay_ip
            self.replan()  # the site joins (or leaves) the overlay; the push carries its state
        if msg.underlay_ip is None or self.plan is None or site not in self.plan.sites:
            return
        gen = self.generation.get(site)
        if agent.held == (self.epoch, gen):
            agent.expected = gen
            return
        now = time.monotonic()
        if (msg.want_state and now - agent.last_full >= FULL_STATE_EVERY) or now - agent.last_push >= RESYNC_AFTER:
            self._push(site, self.plan.sites[site], None)

    # -- removed sites ----------------------------------------------------------------------------------

    def _remove_site(self, site: str, op: str) -> dict[str, Any]:
        """Drop ``site`` from the plan, push the other sites their diff, push its agent an
        empty state (see the module docstring), and record the outcome in operation ``op``."""
        agent = self.agents.pop(site, None)
        underlay_ip = self.sites.pop(site, None)
        pushed = [s for s in self.replan(force=True)["sites_pushed"] if s != site]
        sent = False
        if underlay_ip is not None and agent is not None:
            generation = self.generation[site] = self.generation.get(site, 0) + 1
            retired = self._retired[site] = _Retired(agent, generation, underlay_ip)
            sent = self._push_empty(site, retired)
        # Not sent (no overlay there, or no agent heard from): a later incarnation of the agent
        # gets its full state when it rejoins, which removes any Wind device left over.
        outcome = {"agent": "notified" if sent else "unreachable", "sites_pushed": pushed}
        detail = {"site": site, "agent": outcome["agent"],
                  "teardown": "pushed" if sent else "when the agent rejoins"}
        try:
            self.store.update_operation(op, "done", detail)
        except WindError as exc:
            _log.warning("overlay.removal_not_recorded", site=site, error=str(exc))
        _log.info("overlay.site_removed", site=site, **outcome)
        return outcome

    def _push_empty(self, site: str, retired: _Retired) -> bool:
        assert retired.agent is not None
        push = OverlayPush(site, self.epoch, retired.generation, None,
                           encode_state(SiteState.empty(site, retired.underlay_ip)))
        retired.last_push = time.monotonic()
        try:
            retired.agent.ref.tell(push)
        except WindError as exc:
            _log.warning("overlay.teardown_push_failed", site=site, error=str(exc))
            return False
        return True

    def _on_retired_report(self, msg: OverlayReport) -> None:
        """A report from the removed incarnation of a site: push it the empty state until it
        says it holds it; nothing else."""
        site = msg.site
        if site in self.sites or msg.underlay_ip is None:
            return  # not retired yet (RemoveSiteFromPlan is on its way), or nothing to tear down
        retired = self._retired.get(site)
        if retired is None:  # removed before this planner started: push the teardown again
            generation = self.generation[site] = self.generation.get(site, 0) + 1
            retired = self._retired[site] = _Retired(None, generation, msg.underlay_ip)
        if retired.agent is None or retired.agent.ref != msg.agent:
            retired.agent = _Agent(msg.agent, msg.address)
        if (msg.epoch, msg.generation) == (self.epoch, retired.generation):
            if not retired.confirmed:
                retired.confirmed = True
                self._confirm_teardown(site)
            return
        now = time.monotonic()
        if (msg.want_state and now - retired.last_push >= FULL_STATE_EVERY) or now - retired.last_push >= RESYNC_AFTER:
            self._push_empty(site, retired)

    def _confirm_teardown(self, site: str) -> None:
        _log.info("overlay.site_torn_down", site=site)
        tomb = self.removed.get(site)
        if not tomb or not tomb.get("op"):
            return
        try:
            op = self.store.get_operation(tomb["tenant"], tomb["op"])
            self.store.update_operation(op.id, op.state, {**(op.detail or {}), "teardown": "confirmed"})
        except WindError as exc:  # the operation is a record for people; the teardown happened
            _log.warning("overlay.teardown_not_recorded", site=site, error=str(exc))

    def _share_peers(self, site: str, agent: _Agent, known: int) -> None:
        """Tell an agent the nodes it probes for RTTs: a bounded set (``_probes``), never all."""
        neighbours: set[str] = set()
        state = self.plan.sites.get(site) if self.plan is not None else None
        for segment in (state.segments.values() if state is not None else ()):
            neighbours.update(segment.members)
        chosen = probe_peers(site, self.agents, neighbours)
        if known >= len(chosen):
            return
        peers = {self.agents[s].node: self.agents[s].address for s in chosen}
        try:
            agent.ref.tell(OverlayPeers(peers))
        except WindError as exc:
            _log.debug("overlay.peers_not_sent", node=agent.node, error=str(exc))


def start_planner(node: Any, store: Store, interval: float = 1.0, removed: RemovedSites | None = None) -> Any:
    """Start the :class:`OverlayPlanner` (the controller tree's child-spec start function)."""
    return OverlayPlanner.start(node, store, interval, removed)
