"""The placement scheduler: filter and score over the pool, all-or-nothing, deterministic.

For each component (those others refer to first), the sites passing the static rules go into a
heap ordered by score; each instance pops the best site that still passes the dynamic rules and
has a host with room. A site's score only changes when something is placed on it, so one heap
push per placement keeps the order right (incremental scoring). With spread over regions, the
sites of each region have their own heap and the region furthest below its target share wins.

Score, best first: spread deficit (``spread``: fewest instances relative to the target share of
that site or region), then the policy (``binpack``: the fullest site after placing, ``spread``:
the emptiest, by dominant resource), then a seeded rank, so ties are broken reproducibly.
Within a site, ``binpack`` fills one host before the next and ``spread`` goes round the hosts.

If the greedy pass fails, a complete backtracking search (``_search``) runs within a budget
before ``PlacementFailed`` is raised; the pool is left exactly as it was.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from ..errors import PlacementFailed
from ._constraints import AppRun, CompPlan
from ._descriptor import AppDescriptor
from ._explain import Explanation, explain_instance, explain_violations
from ._pool import Pool, Resources
from ._search import search
from ._state import PoolState

__all__ = ["Slot", "Placement", "Scheduler", "schedule"]


@dataclass(frozen=True)
class Slot:
    """Where one instance goes: a site and one of its hosts, with the resources it takes."""

    instance: str
    component: str
    site: str
    host: str
    resources: Resources

    def to_mapping(self) -> dict[str, Any]:
        return {"instance": self.instance, "component": self.component, "site": self.site,
                "host": self.host, "resources": list(self.resources)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Slot":
        return cls(data["instance"], data["component"], data["site"], data["host"],
                   Resources(*data["resources"]))


@dataclass(frozen=True)
class Placement:
    """A placement of every requested instance of one application."""

    tenant: str
    app: str
    slots: tuple[Slot, ...]

    def by_instance(self) -> dict[str, Slot]:
        """Returns: ``instance id -> Slot``."""
        return {slot.instance: slot for slot in self.slots}

    def by_site(self) -> dict[str, list[Slot]]:
        """Returns: ``site -> [Slot, ...]`` for the sites used."""
        out: dict[str, list[Slot]] = {}
        for slot in self.slots:
            out.setdefault(slot.site, []).append(slot)
        return out

    def to_mapping(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "app": self.app, "slots": [s.to_mapping() for s in self.slots]}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Placement":
        return cls(data["tenant"], data["app"], tuple(Slot.from_mapping(s) for s in data["slots"]))


class Scheduler:
    """Places applications into a working copy of the pool, reserving what it places.

    Pure: no threads, no I/O. Keep one per pool view and call ``place`` repeatedly (the
    reservations accumulate); build a new one, or call ``reset``, when fresh reports arrive.

    Args:
        pool: the pool to place into.
        seed: breaks ties between equal sites; the same seed gives the same placements.
        search_budget: work units for the backtracking search after a greedy failure.
    """

    def __init__(self, pool: Pool, *, seed: int = 0, search_budget: int = 200_000) -> None:
        self.seed = seed
        self.search_budget = search_budget
        self.reset(pool)

    def reset(self, pool: Pool) -> None:
        """Start again from ``pool`` (forgetting reservations not reflected in it)."""
        self.state = PoolState(pool, self.seed)
        self._static: dict = {}

    @property
    def pool(self) -> Pool:
        """The pool with every reservation made so far."""
        return self.state.to_pool()

    def place(self, app: AppDescriptor, *, existing: Mapping[str, Any] | None = None,
              commit: bool = True) -> Placement:
        """Place every instance of ``app`` not already in ``existing``, or none of them.

        Args:
            app: the validated descriptor.
            existing: ``instance id -> Slot`` already running; they count for every rule, and
                their resources are assumed to be in the pool already. Those on sites or hosts
                missing from the pool are neither counted nor placed again (reconcile: lost).
            commit: keep the new placements reserved (False: only compute them).

        Returns:
            The placement of the new instances.

        Raises:
            PlacementFailed: nothing fits; ``.explanation`` says how many sites each rule excluded.
        """
        existing = existing or {}
        st = self.state
        run = AppRun(st, app, self._static)
        for iid, slot in existing.items():
            s = st.index.get(slot.site)
            h = st.host_index[s].get(slot.host) if s is not None else None
            if h is not None and slot.component in run.plans:
                run.add(iid, slot.component, s, h, reserve=False)
        todo = [(iid, comp.name) for comp in run.order for iid in comp.instance_ids() if iid not in existing]
        explanation = self._greedy(run, todo)
        if explanation is not None:
            run.rollback()
            hopeless = not all(run.plans[c].candidates for _, c in todo)
            found = None if hopeless else search(run, todo, self.search_budget, self._search_key(run))
            if not found:
                if hopeless:
                    note = "a component has no site passing its static rules, so no placement exists"
                elif found is None:
                    note = "the search budget ran out before every placement was tried; one may exist"
                else:
                    note = "an exhaustive search found no placement"
                raise PlacementFailed(replace(explanation, notes=explanation.notes + (note,)),
                                      tenant=app.tenant, app=app.name)
        slots = []
        for iid, comp in todo:
            _, s, h = run.slots[iid]
            plan = run.plans[comp]
            slots.append(Slot(iid, comp, st.names[s], st.host_names[s][h], Resources(plan.c, plan.m, plan.d)))
        if not commit:
            run.rollback()
        return Placement(app.tenant, app.name, tuple(slots))

    def release(self, slots: Iterable[Slot]) -> None:
        """Give back the resources of ``slots`` (an undeployed placement)."""
        st = self.state
        for slot in slots:
            s = st.index.get(slot.site)
            h = st.host_index[s].get(slot.host) if s is not None else None
            if h is not None:
                st.give(s, h, *slot.resources)

    def reserve(self, slots: Iterable[Slot]) -> None:
        """Take the resources of ``slots`` (a stored placement the pool does not show yet)."""
        st = self.state
        for slot in slots:
            s = st.index.get(slot.site)
            h = st.host_index[s].get(slot.host) if s is not None else None
            if h is not None:
                st.take(s, h, *slot.resources)

    # -- the greedy pass ------------------------------------------------------------------------

    @staticmethod
    def _search_key(run: AppRun):
        """The greedy pass's site order, as one function for the search."""
        st = run.state
        binpack = run.app.policy == "binpack"

        def key(plan: CompPlan, s: int) -> tuple:
            util = st.utilization_after(s, plan.c, plan.m, plan.d)
            score = (-util if binpack else util, st.rank[s])
            if plan.spread_over == "region":
                value = st.regions[s]
                return (run.regions[plan.name].get(value, 0) - plan.targets.get(value, 0.0) * plan.count,) + score
            if plan.spread_over == "site":
                return (run.sites[plan.name].get(s, 0) - plan.targets.get(st.names[s], 0.0) * plan.count,) + score
            return score

        return key

    def _greedy(self, run: AppRun, todo: list[tuple[str, str]]) -> Explanation | None:
        i = 0
        while i < len(todo):
            comp = todo[i][1]
            j = i
            while j < len(todo) and todo[j][1] == comp:
                j += 1
            failed = self._place_component(run, run.plans[comp], [iid for iid, _ in todo[i:j]])
            if failed is not None:
                return explain_instance(run, run.plans[comp], failed, [])
            i = j
        violations = run.final_violations()
        return explain_violations(run, violations, []) if violations else None

    def _place_component(self, run: AppRun, plan: CompPlan, instances: list[str]) -> str | None:
        st = run.state
        c, m, d, n_total = plan.c, plan.m, plan.d, plan.count
        binpack = run.app.policy == "binpack"
        by_region = plan.spread_over == "region"
        by_site = plan.spread_over == "site"
        targets = plan.targets
        site_counts = run.sites[plan.name]
        region_counts = run.regions[plan.name]
        names, regions, rank, version = st.names, st.regions, st.rank, st.version
        util = st.utilization_after

        def key(s: int) -> tuple:
            u = util(s, c, m, d)
            if by_site:
                return (site_counts.get(s, 0) - targets.get(names[s], 0.0) * n_total,
                        -u if binpack else u, rank[s])
            return (-u if binpack else u, rank[s])

        groups: dict[str | None, list] = {}
        for s in plan.candidates:
            groups.setdefault(regions[s] if by_region else None, []).append((key(s), version[s], s))
        for heap in groups.values():
            heapq.heapify(heap)
        for iid in instances:
            while True:
                best_key = best_group = None
                for g in list(groups):
                    heap = groups[g]
                    while heap and heap[0][1] != version[heap[0][2]]:
                        heapq.heappop(heap)  # stale: the site changed and was pushed again
                    if not heap:
                        del groups[g]
                        continue
                    gk = heap[0][0]
                    if by_region:
                        gk = (region_counts.get(g, 0) - targets.get(g, 0.0) * n_total,) + gk
                    if best_key is None or gk < best_key:
                        best_key, best_group = gk, g
                if best_key is None:
                    return iid
                heap = groups[best_group]
                s = heap[0][2]
                # Rules only tighten while one component is placed, so a refused site stays refused.
                h = None if run.site_reason(plan, s) is not None else self._pick_host(run, plan, s, binpack)
                if h is None:
                    heapq.heappop(heap)
                    continue
                run.add(iid, plan.name, s, h)
                heapq.heapreplace(heap, (key(s), version[s], s))
                break
        return None

    @staticmethod
    def _pick_host(run: AppRun, plan: CompPlan, s: int, binpack: bool) -> int | None:
        st = run.state
        c, m, d = plan.c, plan.m, plan.d
        if st.fc[s] < c or st.fm[s] < m or st.fd[s] < d:
            return None
        hc, hm, hd = st.hc[s], st.hm[s], st.hd[s]
        n = len(hc)
        start = st.cursor[s]
        rules = plan.host_rules
        for k in range(n):
            h = start + k
            if h >= n:
                h -= n
            if hc[h] >= c and hm[h] >= m and hd[h] >= d and (not rules or run.host_ok(plan, s, h)):
                # binpack: next-fit keeps filling this host; spread: round-robin over hosts.
                st.cursor[s] = h if binpack else (h + 1 if h + 1 < n else 0)
                return h
        return None


def schedule(pool: Pool, app: AppDescriptor, *, seed: int = 0, existing: Mapping[str, Any] | None = None,
             search_budget: int = 200_000) -> Placement:
    """Place ``app`` into ``pool``: a pure function of its arguments.

    Args:
        pool: the resource pool (not modified).
        app: the validated descriptor.
        seed: tie-breaking seed (same inputs and seed, same placement).
        existing: instances already placed (see ``Scheduler.place``).
        search_budget: work units for the backtracking search after a greedy failure.

    Returns:
        The placement of every instance not in ``existing``.

    Raises:
        PlacementFailed: no placement of the whole application exists (or none was found within
            the budget; the explanation says which).
    """
    return Scheduler(pool, seed=seed, search_budget=search_budget).place(app, existing=existing)
