"""Lost sites: the controller's side of rescheduling the VMs of a site that stays unreachable.

A site that stops reporting is *down* after ``site_timeout``; its VMs show ``lost``, because they
may still run behind a partition. Once it has been down for ``[controller] lost_site_grace``
seconds (0: never), :class:`LostSites` asks ``services.replan_lost`` to place its VMs elsewhere,
a whole component at a time, and records every move in the store in one transaction per
application: the new slot in the placement and the VM record, plus the site the VM left, under
the placement's ``moved`` key (``{vm name: [sites]}``). A controller restarted later keeps the
move, and the application actor (``stale_copies``) stops and removes the copies that a returning
site still runs instead of adopting them. A component that fits nowhere stays ``lost``, the
scheduler's explanation shown in ``wind app status``, and is tried again whenever the pool
changes.

Every method runs on the controller actor's thread (the helper has no lock and no thread).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from wind_actors.services import (AppRecord, LostApp, ObservedVM, Store, VMRecord, parse_descriptor,
                                  replan_lost, vm_name)

from ._views import Snapshot, build_pool, slots_of

__all__ = ["LostSites", "moved_from", "stale_copies", "MOVED_KEY"]

_log = structlog.get_logger("wind.controller.lost")

#: The placement key recording where moved VMs came from.
MOVED_KEY = "moved"
#: Ticks between looks in the store for placed-on sites that have not reported since the start.
_SCAN_TICKS = 10
#: Seconds after which a failed attempt is tried again even if the pool looks the same.
RETRY_AFTER = 30.0


def moved_from(placement: Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """Returns: ``vm name -> the sites it was moved away from`` recorded in a stored placement."""
    moved = (placement or {}).get(MOVED_KEY) or {}
    return {name: frozenset(sites) for name, sites in moved.items()}


def stale_copies(observed: Iterable[ObservedVM], placed: Mapping[str, str | None],
                 moved: Mapping[str, frozenset[str]]) -> tuple[list[ObservedVM], list[ObservedVM]]:
    """Split observed copies into stale ones and the rest.

    A copy is stale when its VM was moved away from the site reporting it and is now placed
    elsewhere: that copy is stopped and removed, never adopted, even while the VM has not
    started at its new site yet.

    Args:
        observed: the application's observed VMs.
        placed: ``vm name -> site`` it is placed on now.
        moved: ``moved_from(placement)``.

    Returns:
        ``(stale, rest)``.
    """
    stale, rest = [], []
    for vm in observed:
        if vm.managed and vm.site in moved.get(vm.name, ()) and placed.get(vm.name) != vm.site:
            stale.append(vm)
        else:
            rest.append(vm)
    return stale, rest


class LostSites:
    """Tracks how long each site has been down and reschedules the VMs of lost ones.

    Args:
        store: the desired-state store.
        grace: seconds a site must be down before its VMs move; 0 disables rescheduling.
        site_timeout: the controller's ``site_timeout`` (a silent site went down this long
            after its last message).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, store: Store, grace: float, site_timeout: float, clock: Any = time.monotonic) -> None:
        self.store = store
        self.grace = grace
        self.site_timeout = site_timeout
        self._clock = clock
        self._started = clock()
        self._down_since: dict[str, float] = {}
        self._placed_sites: frozenset[str] = frozenset()
        self._ticks = 0
        self._scanned_at: int | None = -1  # store commits at the last scan of placed sites
        self._last_key: Any = None
        self._last_try = 0.0
        self._stuck: dict[str, str] = {}   # vm name -> why it is still lost
        #: ``(tenant, app)`` of the applications whose VMs the last move moved (their overlay NICs change).
        self.moved_apps: list[tuple[str, str]] = []

    # -- every tick ---------------------------------------------------------------------------

    def tick(self, snap: Snapshot) -> int:
        """Update the down times and, when sites are lost, try to move their VMs.

        Returns:
            How many VMs were moved (the caller re-plans the overlay of :attr:`moved_apps` when
            any were).
        """
        now = self._clock()
        commits = getattr(self.store, "commits", None)
        if self._ticks % _SCAN_TICKS == 0 and (commits is None or commits != self._scanned_at):
            # Only after a write: an idle controller reads nothing from the store per tick.
            self._scanned_at = commits
            self._placed_sites = frozenset(r.site for r in self.store.vms() if r.site is not None)
        self._ticks += 1
        self._observe(snap, now)
        if self.grace <= 0:
            return 0
        lost = frozenset(n for n, since in self._down_since.items() if now - since >= self.grace)
        if not lost & self._placed_sites:
            self._stuck.clear()
            return 0
        return self._replan(snap, lost, now)

    def _observe(self, snap: Snapshot, now: float) -> None:
        for name, view in snap.sites.items():
            if view.up:
                self._down_since.pop(name, None)
            elif name not in self._down_since:
                silent_since = view.last_seen + self.site_timeout
                self._down_since[name] = silent_since if silent_since < now else now
        for name in self._placed_sites - set(snap.sites):
            self._down_since.setdefault(name, self._started)  # not heard of since this controller started

    def _replan(self, snap: Snapshot, lost: frozenset[str], now: float) -> int:
        records = [r for r in self.store.list_applications() if r.state in ("deploying", "running")]
        affected = [r for r in records if any(s.site in lost for s in slots_of(r.placement))]
        if not affected:
            self._stuck.clear()
            return 0
        # Try again when anything the scheduler reads has changed (a report, a deploy, a move).
        key = (lost, tuple((n, v.up, v.report.health, v.report.hosts) for n, v in sorted(snap.sites.items())),
               tuple((r.tenant, r.name, r.generation) for r in records))
        if key == self._last_key and now - self._last_try < RETRY_AFTER:
            return 0
        self._last_key, self._last_try = key, now
        self.moved_apps = []
        pending = [(vm_name(r.tenant, r.name, s.instance), s) for r in self.store.list_applications()
                   for s in slots_of(r.placement)]
        apps = [LostApp(parse_descriptor(r.descriptor, allow_unsupported=True),
                        {s.instance: s for s in slots_of(r.placement)}) for r in affected]
        result = replan_lost(build_pool(snap, pending), apps, lost)
        moved = 0
        for rec, la in zip(affected, apps):
            moves = [m for m in result.moves if (m.tenant, m.app) == (rec.tenant, rec.name)]
            if moves:
                self._record_moves(rec, result.slots(la), moves)
                moved += len(moves)
                self.moved_apps.append((rec.tenant, rec.name))
        self._stuck = {}
        for stuck in result.stuck:
            for iid in stuck.instances:
                self._stuck[vm_name(stuck.tenant, stuck.app, iid)] = stuck.reason
            _log.warning("controller.lost_vms_not_rescheduled", tenant=stuck.tenant, app=stuck.app,
                         component=stuck.component, instances=list(stuck.instances),
                         sites=list(stuck.sites), reason=stuck.reason)
        return moved

    def _record_moves(self, rec: AppRecord, slots: Mapping[str, Any], moves: list[Any]) -> None:
        placement = dict(rec.placement or {})
        placement["slots"] = [slots[s.instance].to_mapping() for s in slots_of(rec.placement)]
        history = {k: list(v) for k, v in (placement.get(MOVED_KEY) or {}).items()}
        by_name = {vm_name(rec.tenant, rec.name, m.instance): m for m in moves}
        for name, move in by_name.items():
            history[name] = sorted(set(history.get(name, ())) | {move.from_site})
        placement[MOVED_KEY] = history
        vms = []
        for vm in self.store.vms(rec.tenant, rec.name):
            move = by_name.get(vm.name)
            if move is not None:
                vm = VMRecord(vm.name, vm.tenant, vm.app, vm.instance, vm.component, move.slot.site,
                              move.slot.host, "pending", vm.desired, vm.restart)
            vms.append(vm)
        # One transaction: the placement, the VM records and the move history change together.
        self.store.put_application(rec.tenant, rec.name, rec.descriptor, placement, vms, state=rec.state)
        for name, move in by_name.items():
            _log.warning("controller.vm_rescheduled", vm=name, from_site=move.from_site,
                         to_site=move.slot.site, host=move.slot.host,
                         down_s=round(self._clock() - self._down_since.get(move.from_site, self._clock()), 1))

    # -- status ---------------------------------------------------------------------------------

    def annotate(self, row: dict[str, Any], rec: AppRecord, snap: Snapshot) -> None:
        """Add to one ``app_row`` why each lost VM is lost and where moved VMs came from.

        Args:
            row: the application's status row (changed in place).
            rec: its stored record.
            snap: the snapshot ``row`` was built from.
        """
        now = self._clock()
        self._observe(snap, now)
        moved = moved_from(rec.placement)
        for vm in row.get("vms", ()):
            if vm["name"] in moved:
                vm["moved_from"] = sorted(moved[vm["name"]])
            if vm["state"] != "lost":
                continue
            site = vm["site"]
            since = self._down_since.get(site)
            down = f"site {site} unreachable for {now - since:.0f} s" if since is not None \
                else f"site {site} is not up"
            if self.grace <= 0:
                why = f"{down}; rescheduling is off (lost_site_grace = 0)"
            elif vm["name"] in self._stuck:
                why = f"{down}; cannot reschedule: {self._stuck[vm['name']]}"
            elif since is not None and now - since < self.grace:
                why = f"{down}; rescheduled elsewhere after {self.grace:g} s (lost_site_grace)"
            else:
                why = f"{down}; rescheduling"
            vm["lost_reason"] = why
            vm["detail"] = why
