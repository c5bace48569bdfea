"""What the overlay planner knows of each site's agent, and how it tears a removed site down.

:class:`SiteRemoval` is the part of :class:`~._overlay.OverlayPlanner` that handles removed sites
(its methods run on the planner's thread, on the planner's state): :class:`RemoveSiteFromPlan`
takes a site out of the plan and pushes its agent an empty state; reports from that removed
incarnation get the empty state again until the agent confirms it holds it, which is recorded
in the removal's operation.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from overlay import SiteState
from wind_actors.agent._overlay import REPORT_INTERVAL, OverlayPush, OverlayReport, encode_state
from wind_actors.errors import WindError

__all__ = ["FULL_STATE_EVERY", "RESYNC_AFTER", "SiteRemoval"]

_log = structlog.get_logger("wind.controller.overlay")

#: Seconds a site may stay behind the planner (a lost push) before it gets its full state again.
RESYNC_AFTER = 2.5 * REPORT_INTERVAL
#: Least seconds between two full-state pushes to one site that keeps asking for one.
FULL_STATE_EVERY = 0.5


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


class SiteRemoval:
    """Removed sites, for :class:`~._overlay.OverlayPlanner` (a mixin: it uses the planner's
    ``agents``, ``sites``, ``generation``, ``epoch``, ``store``, ``removed`` and ``_retired``)."""

    agents: dict[str, _Agent]
    sites: dict[str, str]
    generation: dict[str, int]
    epoch: str
    store: Any
    removed: Any
    _retired: dict[str, _Retired]

    def _sites_changed(self) -> dict[str, Any]:
        """Re-plan after ``sites`` changed, and push (the planner's)."""
        raise NotImplementedError

    def _remove_site(self, site: str, op: str) -> dict[str, Any]:
        """Drop ``site`` from the plan, push the other sites their diff, push its agent an
        empty state (see the module docstring), and record the outcome in operation ``op``."""
        agent = self.agents.pop(site, None)
        underlay_ip = self.sites.pop(site, None)
        pushed = [s for s in self._sites_changed()["sites_pushed"] if s != site]
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
