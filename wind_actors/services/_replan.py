"""Rescheduling the VMs of lost sites, as a pure function (Nomad's "lost" allocations).

A site that has been unreachable for longer than the controller's grace is *lost*: its VMs may
still run behind a partition, but the tenant wants them running somewhere it can reach. For each
application, component by component (those others refer to first, as the scheduler orders them),
``replan_lost`` asks the scheduler to place *every* instance of that component sitting on a lost
site, or none of them for this attempt:

* every other instance of the application counts for the rules where it is now, including
  instances still on a lost site (their copy may come back; affinity to them is honoured and
  anti-affinity against them is respected, so nothing is broken when they do);
* lost and otherwise down sites never take a VM (the scheduler only places on ``up`` sites);
* one ``Scheduler`` reserves what it places across every application of the call, so two moves
  never count on the same free room.

When nothing fits, the component's instances stay where they are (``lost``) and the result says
why, with the scheduler's explanation; the controller tries again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ..errors import PlacementFailed
from ._constraints import _order
from ._descriptor import AppDescriptor
from ._explain import Explanation
from ._pool import Host, Pool, SiteReport
from ._scheduler import Scheduler, Slot

__all__ = ["LostApp", "Move", "Stuck", "LostReplan", "replan_lost"]


@dataclass(frozen=True)
class LostApp:
    """One application as it is placed now.

    Attributes:
        app: the validated descriptor.
        slots: ``instance id -> Slot`` for every instance (those on lost sites included).
    """

    app: AppDescriptor
    slots: Mapping[str, Slot]


@dataclass(frozen=True)
class Move:
    """Instance ``instance`` of ``tenant/app`` leaves lost site ``from_site`` for ``slot``."""

    tenant: str
    app: str
    instance: str
    component: str
    from_site: str
    slot: Slot


@dataclass(frozen=True)
class Stuck:
    """A component whose lost instances could not be placed elsewhere in this attempt.

    Attributes:
        tenant, app, component: which.
        instances: its instances still on lost sites, sorted.
        sites: the lost sites they are on, sorted.
        reason: one line for people (``wind app status``).
        explanation: the scheduler's explanation, None when the scheduler was not asked.
    """

    tenant: str
    app: str
    component: str
    instances: tuple[str, ...]
    sites: tuple[str, ...]
    reason: str
    explanation: Explanation | None = None


@dataclass(frozen=True)
class LostReplan:
    """The outcome of ``replan_lost``.

    Attributes:
        moves: every instance to move, in application then placing order.
        stuck: every component left lost, with why.
        pool: the pool with every move's resources reserved.
    """

    moves: tuple[Move, ...]
    stuck: tuple[Stuck, ...]
    pool: Pool

    def slots(self, lost_app: LostApp) -> dict[str, Slot]:
        """Returns: ``lost_app``'s slots with this replan's moves applied."""
        out = dict(lost_app.slots)
        for move in self.moves:
            if (move.tenant, move.app) == (lost_app.app.tenant, lost_app.app.name):
                out[move.instance] = move.slot
        return out


def _mark_lost(pool: Pool, lost: frozenset[str], apps: list[LostApp]) -> Pool:
    """The pool with every lost site down; a lost site missing from it (never reported since the
    controller started) is added as an empty down site, so rules still count what sits there."""
    hosts: dict[str, set[str]] = {}
    for la in apps:
        for slot in la.slots.values():
            if slot.site in lost:
                hosts.setdefault(slot.site, set()).add(slot.host)
    for name in sorted(lost):
        if name in pool.sites:
            if pool.sites[name].health != "down":
                pool = pool.with_site_health(name, "down")
        elif name in hosts:
            empty = tuple(Host(h, 0, 0, 0) for h in sorted(hosts[name]))
            pool = pool.with_report(SiteReport(name=name, driver="unknown", hosts=empty, health="down"))
    return pool


def replan_lost(pool: Pool, apps: Iterable[LostApp], lost_sites: Iterable[str], *, seed: int = 0,
                search_budget: int = 50_000) -> LostReplan:
    """Place elsewhere the instances that sit on lost sites, a whole component at a time.

    Args:
        pool: the pool as it is now; the resources of every instance on a site that is up are
            already counted in it (``controller.build_pool`` does that).
        apps: the applications to consider, in the order they get the free room.
        lost_sites: the sites whose instances move (marked down in the pool if they are not).
        seed: the scheduler's tie-breaking seed (same inputs, same result).
        search_budget: the scheduler's backtracking budget per component.

    Returns:
        A ``LostReplan``: the moves, the components left lost with why, and the pool after.
    """
    lost = frozenset(lost_sites)
    apps = list(apps)
    sched = Scheduler(_mark_lost(pool, lost, apps), seed=seed, search_budget=search_budget)
    moves: list[Move] = []
    stuck: list[Stuck] = []
    for la in apps:
        app = la.app
        current = dict(la.slots)
        missing = [iid for iid, _ in app.instances() if iid not in current]
        on_lost = sorted(iid for iid, slot in current.items() if slot.site in lost)
        if not on_lost:
            continue
        if missing:
            # The scheduler would place those too: refuse rather than start an instance twice.
            stuck.append(Stuck(app.tenant, app.name, "*", tuple(on_lost),
                               tuple(sorted({current[i].site for i in on_lost})),
                               f"instances {', '.join(missing)} have no placement; not rescheduled"))
            continue
        for comp in _order(app):
            victims = [iid for iid in comp.instance_ids() if current[iid].site in lost]
            if not victims:
                continue
            existing = {iid: slot for iid, slot in current.items() if iid not in victims}
            sites = tuple(sorted({current[iid].site for iid in victims}))
            try:
                placement = sched.place(app, existing=existing)
            except PlacementFailed as exc:
                stuck.append(Stuck(app.tenant, app.name, comp.name, tuple(victims), sites,
                                   _one_line(exc.explanation), exc.explanation))
                continue
            for slot in placement.slots:
                moves.append(Move(app.tenant, app.name, slot.instance, slot.component,
                                  current[slot.instance].site, slot))
                current[slot.instance] = slot
    return LostReplan(tuple(moves), tuple(stuck), sched.pool)


def _one_line(explanation: Explanation) -> str:
    """The explanation folded onto one line for a status column."""
    parts = [f"{n} site(s) excluded by {rule}" for rule, n in explanation.excluded]
    parts += list(explanation.notes)
    head = (f"no site can take {explanation.instance}" if explanation.instance
            else "no placement satisfies every rule")
    return f"{head} ({explanation.sites_evaluated} site(s) evaluated: {'; '.join(parts)})"
