"""The controller's part of the overlay: plan every site's overlay from the desired state, push
the changes to the agents, and hand VMs their NICs.

:class:`OverlayPlanner` (registered as ``overlay`` on the controller node) keeps the planner's
input in memory (:class:`~._overlay_inputs.OverlayInputs`): every application's tenant networks
(``networks:`` in the descriptor; a network is the tenant's, shared by the tenant's
applications), every placed VM's NICs (one per network its component lists) and every site that
reported an ``underlay_ip``. Work follows change: it learns what changed as events — a
:class:`Replan` naming the applications whose placements were written (a deploy asks it with
:func:`replan_now` before the VMs are started, so their NICs exist; an undeploy and the VMs moved
off a lost site tell it with :func:`overlay_changed`), and a site that appears, leaves or changes
its underlay address — re-reads just those applications, re-plans just the networks whose
definition or membership changed (:func:`overlay.replan`, keeping VNIs, addresses and MACs),
diffs just the sites those networks touch and writes just the NIC tables that changed. A VM's
state changing, or an application with no networks, costs it nothing, and its tick does nothing
while nothing changed. A safety pass every ``resync_interval`` seconds (``[controller]
reconcile_interval``), when the store was written since the last one, re-reads every
application and re-plans whatever it finds different. Each changed site is pushed its
:class:`~overlay.SiteDiff` (or its full state when the agent is not at the diff's base) as
:class:`OverlayPush` messages, cut into parts under the frame limit when large
(:func:`~wind_actors.agent._overlay.push_parts`). Agents that report a state behind the
planner's get the full state again.

What it persists (``Store.put_overlay``, see ``_overlay_store``): ``overlay/allocations`` (the
VNIs), ``overlay/sites`` (``{site: underlay_ip}``) and ``overlay/nics/TENANT/APP`` (``{vm:
[nic]}``, a nic being ``{"network", "mac", "bridge", "ip", "prefixlen"}``). The last one is what
:func:`attach_nics` puts into VM specs (MAC and attach-point bridge) and what
:func:`add_overlay_addresses` shows in ``wind app status``; the planner restores addresses and
MACs from it when it starts, so they are stable across controller restarts.

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from overlay import Plan, SiteState
from supervisors import WatchedActor
from wind_actors._chunks import budget_of
from wind_actors.agent._overlay import (OVERLAY_PLANNER, OverlayPeers, OverlayReport, encode_diff, encode_state,
                                        push_parts)
from wind_actors.agent._ticker import Ticker
from wind_actors.errors import Forbidden, WindError
from wind_actors.runtime import SYSTEM, identity_of
from wind_actors.services import Store

from ._overlay_agents import FULL_STATE_EVERY, RESYNC_AFTER, SiteRemoval, _Agent, _Retired
from ._overlay_book import PlanBook
from ._overlay_nics import add_overlay_addresses, attach_nics, nic_mac, nic_tables, overlay_nics, plan_inputs
from ._overlay_store import ALLOCATIONS_KEY, SITES_KEY
from ._peer_sets import PeerSets, agent_key
from ._removed import RemovedSites

__all__ = [
    "ALLOCATIONS_KEY", "SITES_KEY", "OverlayPlanner", "RemoveSiteFromPlan", "Replan", "add_overlay_addresses",
    "attach_nics", "nic_mac", "nic_tables", "overlay_changed", "overlay_nics", "replan_now", "plan_inputs",
]

_log = structlog.get_logger("wind.controller.overlay")


@dataclass(frozen=True)
class Replan:
    """Ask (or tell) the planner to re-plan now.

    Attributes:
        apps: ``((tenant, app), ...)`` whose stored placement changed (deployed, undeployed, VMs
            moved): only their networks are re-planned. None: re-read every application from the
            store and re-plan whatever differs (the safety pass).

    Reply: ``{"generation", "sites_pushed", "plan_ms", "networks"}`` (``networks``: how many
    were re-planned).
    """

    apps: tuple[tuple[str, str], ...] | None = None


def replan_now(node: Any, apps: Iterable[tuple[str, str]] | None = None,
               timeout: float = 10.0) -> dict[str, Any] | None:
    """Have the controller node's planner re-plan and push before returning (deploy calls it, so
    a new VM's NICs are planned before its spec is sent).

    Args:
        node: the controller node.
        apps: the applications whose placements changed; None: every one (a full re-read).
        timeout: seconds to wait.

    Returns:
        Its reply, or None if there is no planner running or it did not answer in time (its
        safety pass re-plans anyway).
    """
    ref = node.whereis(OVERLAY_PLANNER)
    if ref is None:
        return None
    try:
        return ref.ask(Replan(None if apps is None else tuple(map(tuple, apps))), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a deploy must not fail because the overlay lags
        _log.warning("overlay.replan_failed", error=str(exc))
        return None


def overlay_changed(node: Any, apps: Iterable[tuple[str, str]]) -> None:
    """Tell the planner (without waiting) that these applications' stored placements changed."""
    ref = node.whereis(OVERLAY_PLANNER)
    if ref is not None:
        ref.tell(Replan(tuple(map(tuple, apps))))


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


class OverlayPlanner(SiteRemoval, WatchedActor):
    """The controller's overlay planner (see the module docstring).

    Args:
        node: the controller node.
        store: the desired-state store.
        interval: seconds between ticks (each does nothing unless a safety pass is due).
        removed: the removed sites, shared with the controller (default: read from ``store``).
        resync_interval: seconds between safety passes (``[controller] reconcile_interval``).
    """

    use_daemon_thread = True

    def __init__(self, node: Any, store: Store, interval: float = 1.0,
                 removed: RemovedSites | None = None, resync_interval: float = 30.0) -> None:
        super().__init__()
        self.node, self.store, self.interval = node, store, interval
        self.resync_interval = resync_interval
        self.removed = removed if removed is not None else RemovedSites(store)
        self._retired: dict[str, _Retired] = {}
        self.epoch = secrets.token_hex(4)
        self.book = PlanBook(store)
        self.generation: dict[str, int] = {}
        self.agents: dict[str, _Agent] = {}
        self.sites: dict[str, str] = {}
        self._ticker: Ticker | None = None
        self._synced_at = time.monotonic()
        self._synced_commits: int | None = None  # store commits after the last full re-read
        self._pushes = dict.fromkeys(("sites_pushed", "parts_sent"), 0)

    @property
    def plan(self) -> Plan | None:
        """The current plan (None before the first)."""
        return self.book.plan

    @property
    def stats(self) -> dict[str, int]:
        """Counters of its work (tests and debugging): ``plans`` (re-plans run),
        ``networks_planned`` (networks they re-planned), ``sites_pushed`` (pushes of a new
        state or diff, each perhaps in parts), ``parts_sent``, ``tables_written`` (NIC tables
        written or deleted) and ``resyncs`` (full re-reads of the store)."""
        return {**self.book.stats, **self._pushes}

    # -- hooks (actor thread) -----------------------------------------------------------------------

    def on_start(self) -> None:
        """Restore allocations, sites, addresses and MACs from the store, plan, and start ticking."""
        self.sites = self.book.restore()
        self.node.register(OVERLAY_PLANNER, self.actor_ref, access=SYSTEM)
        self._ticker = Ticker(self.actor_ref, self.interval, _Tick(), name="wind-overlay-planner")
        self.resync()
        _log.info("overlay.planner_started", epoch=self.epoch, sites=len(self.sites))

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    def on_receive(self, msg: Any) -> Any:
        if isinstance(msg, _Tick):
            return self._tick()
        if isinstance(msg, OverlayReport):
            return self._on_agent_report(msg)
        if isinstance(msg, Replan):
            return self.replan(msg.apps)
        if isinstance(msg, RemoveSiteFromPlan):
            return self._remove_site(msg.site, msg.op)
        return None

    # -- planning -------------------------------------------------------------------------------------

    def _tick(self) -> None:
        """The safety pass when it is due and the store was written since the last one; else
        nothing at all (not even a store read)."""
        now = time.monotonic()
        if now - self._synced_at < self.resync_interval:
            return
        self._synced_at = now
        if self.store.commits != self._synced_commits or self.book.pending:
            self.resync()

    def replan(self, apps: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
        """Re-plan after the stored placements of ``apps`` changed; persist and push what changed.

        Args:
            apps: ``(tenant, app)`` pairs to re-read from the store; None: every application
                (:meth:`resync`).

        Returns:
            ``{"generation": {site: n}, "sites_pushed": [...], "plan_ms", "networks"}``.
        """
        if apps is None:
            return self.resync()
        begin = time.perf_counter()
        return self._replan(*self.book.read_apps(apps), begin)

    def resync(self) -> dict[str, Any]:
        """Re-read every application from the store and re-plan whatever differs from what the
        planner holds (the start and the safety pass; in between, events say what changed)."""
        begin = time.perf_counter()
        result = self._replan(*self.book.read_all(), begin)
        self._synced_commits, self._synced_at = self.store.commits, time.monotonic()
        return result

    def _sites_changed(self) -> dict[str, Any]:
        """A site joined, left or changed its underlay address (``self.sites`` says how)."""
        return self._replan(set(), set(), time.perf_counter())

    def _replan(self, dirty: set[tuple[str, str]], apps: set[tuple[str, str]], begin: float) -> dict[str, Any]:
        """Re-plan (``PlanBook.replan``) and push each site whose state changed."""
        done = self.book.replan(dirty, apps, self.sites, begin)
        if done is None:
            return {"generation": dict(self.generation), "sites_pushed": [], "plan_ms": 0.0, "networks": 0}
        pushed = []
        for site, state in done.new.sites.items():
            change = done.changes.get(site)
            if change is None and site in self.generation:
                continue
            self.generation[site] = self.generation.get(site, 0) + 1
            if self._push(site, state, change if done.old is not None else None):
                pushed.append(site)
        if done.changes:
            _log.info("overlay.replanned", networks=done.networks, sites_changed=sorted(done.changes),
                      plan_ms=round(done.plan_ms, 2))
        return {"generation": dict(self.generation), "sites_pushed": pushed, "plan_ms": done.plan_ms,
                "networks": done.networks}

    # -- agents -----------------------------------------------------------------------------------------

    def _push(self, site: str, state: SiteState, change: Any) -> bool:
        """Send ``site`` generation ``self.generation[site]``: the diff when its agent will be at
        the diff's base, else the full state, in parts under the frame limit. Returns whether
        anything was sent."""
        agent = self.agents.get(site)
        if agent is None:
            return False
        gen = self.generation[site]
        now = time.monotonic()
        if change is not None and agent.expected == gen - 1:
            parts = push_parts(site, self.epoch, gen, gen - 1, encode_diff(change), self._budget())
        else:
            parts = push_parts(site, self.epoch, gen, None, encode_state(state), self._budget())
            agent.last_full = now
        try:
            for part in parts:
                agent.ref.tell(part)
        except WindError as exc:  # the agent's next report shows it behind: it gets the full state
            _log.warning("overlay.push_failed", site=site, error=str(exc))
            agent.expected = None
            return False
        self._pushes["sites_pushed"] += 1
        self._pushes["parts_sent"] += len(parts)
        agent.expected, agent.last_push = gen, now
        return True

    def _budget(self) -> int:
        """Bytes of change one push part may carry under the node's frame limit."""
        return budget_of(self.node.config.max_frame_bytes)

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
            self._sites_changed()  # the site joins (or leaves) the overlay; the push carries its state
        if msg.underlay_ip is None or self.plan is None or site not in self.plan.sites:
            return
        gen = self.generation.get(site)
        if agent.held == (self.epoch, gen):
            agent.expected = gen
            return
        now = time.monotonic()
        if (msg.want_state and now - agent.last_full >= FULL_STATE_EVERY) or now - agent.last_push >= RESYNC_AFTER:
            self._push(site, self.plan.sites[site], None)

    def _share_peers(self, site: str, agent: _Agent, known: int) -> None:
        """Tell agents the nodes they probe for RTTs and the nodes probing them, with the keys
        to trust them by: a bounded set each (``_probes``), and only the sites whose set this
        report changes (``_peer_sets``), never every site's."""
        sets = getattr(self, "_peer_sets", None)
        if sets is None:  # made on first use: the planner's __init__ is not this feature's
            sets = self._peer_sets = PeerSets(lambda node: agent_key(self.node, node))
        neighbours: set[str] = set()
        state = self.plan.sites.get(site) if self.plan is not None else None
        for segment in (state.segments.values() if state is not None else ()):
            neighbours.update(segment.members)
        for target, probes, trusted in sets.share(site, agent, neighbours, known, self.agents,
                                                  time.monotonic()):
            to = self.agents[target]
            try:
                to.ref.tell(OverlayPeers(probes, trusted))
            except WindError as exc:  # resent when its next report shows it short
                _log.debug("overlay.peers_not_sent", node=to.node, error=str(exc))


def start_planner(node: Any, store: Store, interval: float = 1.0, removed: RemovedSites | None = None,
                  resync_interval: float = 30.0) -> Any:
    """Start the :class:`OverlayPlanner` (the controller tree's child-spec start function)."""
    return OverlayPlanner.start(node, store, interval, removed, resync_interval)
