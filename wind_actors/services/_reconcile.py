"""Reconciliation as a pure function, like Nomad's: (desired, observed) -> actions.

A controller restarted after SIGKILL has its desired state (the store) and what the agents report;
``reconcile`` says what to do so that every VM still running is adopted, only what is missing is
started, and nothing runs twice:

========  ======================================================================================
place     desired, never placed, and no copy runs anywhere: ask the scheduler
start     placed on a site that is up, and no copy runs anywhere: (re)create/start it there
stop      an observed copy that must go: a duplicate, a Wind VM nobody wants, or desired stopped
ignore    nothing to do (already tracked and running; not Wind's; a clean stop respected ...)
lost      placed on a site that is not up: it may still run behind a partition, so it is not
          restarted elsewhere here; the controller decides after its grace period
adopt     a copy runs that this controller does not track yet: watch it, do not start it
========  ======================================================================================

Every desired VM gets exactly one of place/start/ignore/lost/adopt; ``stop`` only ever names
observed copies, and never the copy being adopted or ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

__all__ = ["DesiredVM", "ObservedVM", "Action", "Reconciliation", "reconcile", "ALIVE_STATES"]

#: Observed states in which a VM exists and holds its resources (it must not be started again).
ALIVE_STATES = frozenset({"running", "paused", "migrating"})


@dataclass(frozen=True)
class DesiredVM:
    """A VM the store says should exist.

    Attributes:
        name: the VM name (``tenant.app.instance``), the key matched against observed VMs.
        site: where it was placed; None if it has not been placed yet.
        restart: ``always`` | ``on-failure`` | ``never``.
        state: ``running`` or ``stopped`` (what the tenant wants).
    """

    name: str
    site: str | None = None
    restart: str = "always"
    state: str = "running"


@dataclass(frozen=True)
class ObservedVM:
    """A VM an agent reports.

    Attributes:
        name: the VM name.
        site: the reporting site.
        state: a driver VM state value (``running``, ``shutoff``, ``crashed``, ``defined`` ...).
        managed: whether it carries Wind's metadata (VMs that are not Wind's are never touched).
    """

    name: str
    site: str
    state: str
    managed: bool = True


@dataclass(frozen=True)
class Action:
    """One thing to do: ``kind`` on VM ``name`` at ``site``, and why."""

    kind: str
    name: str
    site: str | None
    reason: str


@dataclass(frozen=True)
class Reconciliation:
    """The actions, grouped by kind, each sorted by VM name then site."""

    place: tuple[Action, ...] = ()
    start: tuple[Action, ...] = ()
    stop: tuple[Action, ...] = ()
    ignore: tuple[Action, ...] = ()
    lost: tuple[Action, ...] = ()
    adopt: tuple[Action, ...] = ()

    KINDS = ("place", "start", "stop", "ignore", "lost", "adopt")

    def __iter__(self) -> Iterator[Action]:
        for kind in self.KINDS:
            yield from getattr(self, kind)

    def counts(self) -> dict[str, int]:
        """Returns: the number of actions of each kind."""
        return {kind: len(getattr(self, kind)) for kind in self.KINDS}

    @property
    def converged(self) -> bool:
        """True when there is nothing to do but ignore (and wait on lost sites)."""
        return not (self.place or self.start or self.stop or self.adopt)


def _restart_wanted(policy: str, state: str) -> bool:
    if state == "defined":
        return True  # it never ran: the controller died between define and start
    if state == "crashed":
        return policy in ("always", "on-failure")
    return policy == "always"  # shut off cleanly: only "always" brings it back


def reconcile(desired: Iterable[DesiredVM], observed: Iterable[ObservedVM], *,
              sites_up: Iterable[str], tracked: Iterable[str] = ()) -> Reconciliation:
    """Compare desired and observed VMs and say what to do.

    Args:
        desired: every VM the store wants (names unique).
        observed: every VM the agents of up sites report (a name may appear at several sites).
        sites_up: the sites currently reporting and healthy enough to act on.
        tracked: names of VMs this controller already watches (empty after a restart).

    Returns:
        A ``Reconciliation``.
    """
    up = set(sites_up)
    watched = set(tracked)
    copies: dict[str, list[ObservedVM]] = {}
    foreign: list[ObservedVM] = []
    for vm in observed:
        if vm.managed:
            copies.setdefault(vm.name, []).append(vm)
        else:
            foreign.append(vm)
    out: dict[str, list[Action]] = {k: [] for k in Reconciliation.KINDS}

    def act(kind: str, name: str, site: str | None, reason: str) -> None:
        out[kind].append(Action(kind, name, site, reason))

    wanted = set()
    for want in desired:
        wanted.add(want.name)
        seen = sorted(copies.get(want.name, ()), key=lambda v: v.site)
        alive = [v for v in seen if v.state in ALIVE_STATES]
        if want.state == "stopped":
            for vm in alive:
                act("stop", vm.name, vm.site, "desired stopped")
            act("ignore", want.name, want.site, "desired stopped")
            continue
        if alive:
            # Keep the copy on the placed site if there is one, else the first by site name.
            keep = next((v for v in alive if v.site == want.site), alive[0])
            for vm in alive:
                if vm is not keep:
                    act("stop", vm.name, vm.site, f"duplicate: a copy runs at {keep.site}")
            if want.name in watched and keep.site == want.site:
                act("ignore", want.name, keep.site, "running and tracked")
            elif keep.site == want.site:
                act("adopt", want.name, keep.site, "running, not tracked")
            else:
                act("adopt", want.name, keep.site, f"running at {keep.site}, placed at {want.site}")
            continue
        if want.site is None:
            act("place", want.name, None, "not placed yet")
            continue
        if want.site not in up:
            act("lost", want.name, want.site, f"site {want.site} is not up")
            continue
        here = next((v for v in seen if v.site == want.site), None)
        if here is None:
            act("start", want.name, want.site, "missing")
        elif here.state == "unknown":
            act("ignore", want.name, want.site, "state unknown; wait for the next report")
        elif _restart_wanted(want.restart, here.state):
            act("start", want.name, want.site, f"{here.state}, restart {want.restart}")
        else:
            act("ignore", want.name, want.site, f"{here.state}, restart {want.restart}")
    for name, vms in copies.items():
        if name not in wanted:
            for vm in vms:
                act("stop", vm.name, vm.site, "not desired")
    for vm in foreign:
        act("ignore", vm.name, vm.site, "not managed by Wind")
    return Reconciliation(**{k: tuple(sorted(v, key=lambda a: (a.name, a.site or "")))
                             for k, v in out.items()})
