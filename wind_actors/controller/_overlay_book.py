"""The overlay planner's memory: its inputs, its plan, and what it stored (planner thread only).

:class:`PlanBook` is the part of :class:`~._overlay.OverlayPlanner` that plans; the actor around
it talks to agents. It reads applications from the store when told they changed
(:meth:`PlanBook.read_apps`) or on a full re-read (:meth:`PlanBook.read_all`), keeps the inputs
in an :class:`~._overlay_inputs.OverlayInputs`, re-plans only the networks that changed
(:func:`overlay.replan`; the first plan after a start is a whole :func:`overlay.plan` from the
stored allocations) and writes only what changed (``_overlay_store``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import structlog

from overlay import Allocations, Plan, Site, SiteDiff, diff_plans, plan, replan
from overlay.errors import OverlayError
from wind_actors.services import Store

from ._overlay_inputs import AppKey, NetKey, OverlayInputs
from ._overlay_nics import nics_key, overlay_nics
from ._overlay_store import (ALLOCATIONS_KEY, SITES_KEY, Descriptors, read_all, read_app, restored_allocations,
                             vni_table)

__all__ = ["PlanBook", "Replanned"]

_log = structlog.get_logger("wind.controller.overlay")


class Replanned(NamedTuple):
    """A re-plan's outcome: the plan before and after, each changed site's diff, and how many
    networks were re-planned."""

    old: Plan | None
    new: Plan
    changes: dict[str, SiteDiff]
    networks: int
    plan_ms: float


class PlanBook:
    """Inputs, plan and stored state of the overlay planner (see the module docstring).

    Args:
        store: the desired-state store.

    Attributes:
        plan: the current plan (None before the first).
        inputs: the planner's inputs.
        stats: ``plans``, ``networks_planned``, ``tables_written`` and ``resyncs`` counters.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.plan: Plan | None = None
        self.inputs = OverlayInputs()
        self.stats = dict.fromkeys(("plans", "networks_planned", "tables_written", "resyncs"), 0)
        self._allocations = Allocations()
        self._descriptors = Descriptors()
        self._tables: dict[AppKey, dict[str, Any]] = {}
        self._stored_vnis: Any = None      # overlay/allocations as last read or written
        self._stored_sites: Any = None     # overlay/sites likewise
        self.pending: set[NetKey] = set()  # networks a failed plan left to re-plan

    def restore(self) -> dict[str, str]:
        """Read what a previous planner stored: VNIs, NIC tables (addresses, MACs) and sites.

        Returns:
            The stored ``{site: underlay_ip}``.
        """
        self._stored_vnis = self.store.get_overlay(ALLOCATIONS_KEY)
        sites = dict(self.store.get_overlay(SITES_KEY, {}) or {})
        self._stored_sites = dict(sites)
        for rec in self.store.list_applications():
            table = overlay_nics(self.store, rec.tenant, rec.name)
            if table:
                self._tables[(rec.tenant, rec.name)] = table
                self.inputs.restore_macs(rec.tenant, table)
        self._allocations = restored_allocations(self._stored_vnis, self._tables)
        return sites

    # -- what changed -------------------------------------------------------------------------------

    def read_apps(self, apps: Iterable[tuple[str, str]]) -> tuple[set[NetKey], set[AppKey]]:
        """Re-read these applications. Returns: ``(dirty networks, the applications)``."""
        keys = {(str(t), str(a)) for t, a in apps}
        dirty: set[NetKey] = set()
        for key in sorted(keys):
            dirty |= self.inputs.set_app(key, read_app(self.store, key, self._descriptors))
        return dirty, keys

    def read_all(self) -> tuple[set[NetKey], set[AppKey]]:
        """Re-read every application. Returns: ``(dirty networks, the applications that differed)``."""
        self.stats["resyncs"] += 1
        current = read_all(self.store, self._descriptors)
        dirty: set[NetKey] = set()
        changed = set()
        for key in sorted(set(current) | set(self.inputs.apps)):
            if current.get(key) != self.inputs.apps.get(key):
                changed.add(key)
                dirty |= self.inputs.set_app(key, current.get(key))
        if self.plan is None:
            self.inputs.prune_macs()
        elif changed:  # an event went unseen (or the store was written behind the controller's back)
            _log.info("overlay.resync_found_changes", apps=len(changed), networks=len(dirty))
        return dirty, changed

    # -- planning -----------------------------------------------------------------------------------

    def replan(self, dirty: set[NetKey], apps: set[AppKey], sites: Mapping[str, str],
               begin: float) -> Replanned | None:
        """Re-plan the ``dirty`` networks (everything when there is no plan yet) for ``sites``
        and write what changed (the NIC tables of ``apps`` and of the dirty networks'
        applications among them).

        Returns:
            The :class:`Replanned`, or None when nothing the plan depends on changed, or the
            plan failed (logged; its networks are tried again with the next re-plan).
        """
        dirty = dirty | self.pending | self.inputs.set_sites(sites)
        if self.plan is not None and not dirty and self._has_sites(sites):
            return None
        site_list = [Site(name, ip) for name, ip in sorted(sites.items())]
        try:
            if self.plan is None:
                dirty |= set(self.inputs.networks)
                nets, nics = self.inputs.plan_input(dirty)
                new = plan(site_list, nets, nics, previous=self._allocations)
            else:
                nets, nics = self.inputs.plan_input(dirty)
                new = replan(self.plan, site_list, nets, nics, dirty)
        except OverlayError as exc:
            # The last good plan stays realized; the error names the network or NIC at fault.
            _log.error("overlay.plan_failed", error=str(exc))
            self.pending = dirty
            return None
        self.pending = set()
        plan_ms = (time.perf_counter() - begin) * 1000
        owners = self.inputs.owners(dirty) | apps
        if self.plan is None:
            owners |= set(self.inputs.apps) | set(self._tables)
        self._persist(new, owners, sites)
        changes = diff_plans(self.plan, new, dirty)  # only the dirty networks' segments can differ
        old, self.plan = self.plan, new
        self.stats["plans"] += 1
        self.stats["networks_planned"] += len(dirty)
        return Replanned(old, new, changes, len(dirty), plan_ms)

    def _has_sites(self, sites: Mapping[str, str]) -> bool:
        """Whether the plan has exactly ``sites``, at their addresses."""
        assert self.plan is not None
        return len(self.plan.sites) == len(sites) and all(
            (state := self.plan.sites.get(name)) is not None and state.underlay_ip == ip
            for name, ip in sites.items())

    def _persist(self, new: Plan, owners: set[AppKey], sites: Mapping[str, str]) -> None:
        """Write what changed: the VNI table, the sites, and the NIC tables of ``owners``."""
        vnis = vni_table(new.allocations)
        if vnis != self._stored_vnis:
            self.store.put_overlay(ALLOCATIONS_KEY, vnis)
            self._stored_vnis = vnis
        if sites != self._stored_sites:
            self.store.put_overlay(SITES_KEY, dict(sites))
            self._stored_sites = dict(sites)
        for key in sorted(owners):
            table = self.inputs.table(new, key)
            if table == self._tables.get(key, {}):
                continue
            self.stats["tables_written"] += 1
            if table:
                self.store.put_overlay(nics_key(*key), table)
                self._tables[key] = table
            else:
                self.store.delete_overlay(nics_key(*key))
                del self._tables[key]
