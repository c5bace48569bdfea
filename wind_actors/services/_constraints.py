"""One application's constraints compiled against a ``PoolState``, and the placements made so far.

Static rules (health, where, latency to a named site) are evaluated once per component into a
candidate list. Dynamic rules (affinity, anti-affinity, latency between components) depend on what
is already placed and are checked per site with ``site_reason``. Anti-affinity and latency bounds
are symmetric, so each is recorded on both components: the check made when the second one is
placed then covers the pair exactly. Affinity is one-way ("every A near some B") and is vacuous
while no B is placed; ``final_violations`` checks it once everything is placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._descriptor import AppDescriptor, Component, Where
from ._state import PoolState

__all__ = ["CompPlan", "AppRun", "static_candidates"]


@dataclass
class CompPlan:
    """A component compiled for placement."""

    name: str
    c: int
    m: int
    d: int
    count: int
    candidates: list[int]
    excluded: dict[str, int]
    anti: list[tuple[str, str]] = field(default_factory=list)
    aff: list[tuple[str, str]] = field(default_factory=list)
    lat: list[tuple[str, float]] = field(default_factory=list)
    host_rules: bool = False
    spread_over: str | None = None
    targets: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _where_reason(state: PoolState, s: int, where: Where, prefix: str) -> str | None:
    site = state.sites[s]
    if where.sites and site.name not in where.sites:
        return f"{prefix}.sites"
    if where.regions and site.region not in where.regions:
        return f"{prefix}.regions"
    for key, value in where.labels:
        if site.labels.get(key) != value:
            return f"{prefix}.labels {key}={value}"
    if where.drivers and site.driver not in where.drivers:
        return f"{prefix}.drivers"
    if where.kinds and site.kind not in where.kinds:
        return f"{prefix}.kinds"
    return None


def static_candidates(state: PoolState, app: AppDescriptor, comp: Component) -> tuple[list[int], dict[str, int], list[str]]:
    """Returns: the sites passing the static rules, the count of sites each rule excluded
    (a site counts once, under the first rule it fails), and notes on unknown names."""
    cwhere = comp.placement.where
    prefix = f"components.{comp.name}.placement.where"
    site_bounds = [(b.site, b.ms) for b in comp.placement.max_latency if b.site is not None]
    notes = []
    for where, pfx in ((app.where, "placement.where"), (cwhere, prefix)):
        unknown = [n for n in where.sites if n not in state.index]
        if unknown:
            notes.append(f"{pfx}.sites names site(s) not in the pool: {', '.join(unknown)}")
    for name, _ in site_bounds:
        if name not in state.index:
            notes.append(f"max_latency_ms names site {name!r}, which is not in the pool")
    out: list[int] = []
    excluded: dict[str, int] = {}
    for s in range(state.n):
        reason = None
        if not state.sites[s].schedulable:
            reason = f"health ({state.sites[s].health})"
        if reason is None:
            reason = _where_reason(state, s, app.where, "placement.where")
        if reason is None:
            reason = _where_reason(state, s, cwhere, prefix)
        if reason is None:
            for name, ms in site_bounds:
                t = state.index.get(name)
                rtt = state.rtt(s, t) if t is not None else None
                if rtt is None or rtt > ms:
                    reason = f"max_latency_ms {ms:g} to site {name}"
                    break
        if reason is None:
            out.append(s)
        else:
            excluded[reason] = excluded.get(reason, 0) + 1
    return out, excluded, notes


def _order(app: AppDescriptor) -> list[Component]:
    """Components whose rules refer to others come after them (declaration order otherwise)."""
    comps = {c.name: c for c in app.components}
    deps = {c.name: [r.component for r in c.placement.affinity]
            + [b.component for b in c.placement.max_latency if b.component] for c in app.components}
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return  # a cycle: its remaining checks happen in final_violations
        visiting.add(name)
        for dep in deps[name]:
            if dep in comps and dep != name:
                visit(dep)
        visiting.discard(name)
        done.append(name)

    for comp in app.components:
        visit(comp.name)
    return [comps[n] for n in done]


class AppRun:
    """The placement of one application in progress: compiled rules plus what is placed so far.

    Args:
        state: the pool's working arrays.
        app: the descriptor.
        static_cache: optional dict shared across runs, keyed by the static rules.
    """

    def __init__(self, state: PoolState, app: AppDescriptor, static_cache: dict | None = None) -> None:
        self.state = state
        self.app = app
        self.order = _order(app)
        self.plans: dict[str, CompPlan] = {}
        for comp in self.order:
            key = (app.where, comp.placement.where,
                   tuple((b.site, b.ms) for b in comp.placement.max_latency if b.site))
            cached = static_cache.get(key) if static_cache is not None else None
            if cached is None:
                cached = static_candidates(state, app, comp)
                if static_cache is not None:
                    static_cache[key] = cached
            cands, excluded, notes = cached
            self.plans[comp.name] = CompPlan(comp.name, comp.vcpus, comp.memory_mb, comp.disk_gb, comp.count,
                                             cands, excluded, notes=list(notes))
        for comp in app.components:
            plan = self.plans[comp.name]
            for rel in comp.placement.anti_affinity:
                plan.anti.append((rel.component, rel.scope))
                if rel.component != comp.name:
                    self.plans[rel.component].anti.append((comp.name, rel.scope))
            for rel in comp.placement.affinity:
                plan.aff.append((rel.component, rel.scope))
            for bound in comp.placement.max_latency:
                if bound.component is not None:
                    plan.lat.append((bound.component, bound.ms))
                    if bound.component != comp.name:
                        self.plans[bound.component].lat.append((comp.name, bound.ms))
            if comp.placement.spread is not None:
                self._targets(plan, comp)
        for plan in self.plans.values():
            plan.anti = sorted(set(plan.anti))
            plan.lat = sorted(set(plan.lat))
            plan.host_rules = any(scope == "host" for _, scope in plan.anti + plan.aff)
        names = list(self.plans)
        self.sites: dict[str, dict[int, int]] = {n: {} for n in names}
        self.regions: dict[str, dict[str, int]] = {n: {} for n in names}
        self.hosts: dict[str, dict[tuple[int, int], int]] = {n: {} for n in names}
        self.touched: dict[tuple[int, int], int] = {}
        self.slots: dict[str, tuple[str, int, int]] = {}
        self.journal: list[tuple[str, str, int, int]] = []

    def _targets(self, plan: CompPlan, comp: Component) -> None:
        spread = comp.placement.spread
        assert spread is not None
        plan.spread_over = spread.over
        values = {self.state.regions[s] if spread.over == "region" else self.state.names[s]
                  for s in plan.candidates}
        weights = {v: w for v, w in spread.weights if v in values}
        if not weights:
            weights = {v: 1.0 for v in values}
        total = sum(weights.values())
        plan.targets = {v: w / total for v, w in weights.items()}

    # -- what is placed -------------------------------------------------------------------------

    def add(self, instance: str, comp: str, s: int, h: int, *, reserve: bool = True) -> None:
        """Record ``instance`` of ``comp`` on host ``h`` of site ``s`` (taking its resources)."""
        plan = self.plans[comp]
        if reserve:
            self.state.take(s, h, plan.c, plan.m, plan.d)
            self.journal.append((instance, comp, s, h))
        self._count(comp, s, h, 1)
        self.slots[instance] = (comp, s, h)

    def remove_last(self) -> None:
        """Undo the last reserving ``add``."""
        instance, comp, s, h = self.journal.pop()
        plan = self.plans[comp]
        self.state.give(s, h, plan.c, plan.m, plan.d)
        self._count(comp, s, h, -1)
        del self.slots[instance]

    def rollback(self) -> None:
        """Undo every reserving ``add``: the pool state is as before this run."""
        while self.journal:
            self.remove_last()

    def _count(self, comp: str, s: int, h: int, delta: int) -> None:
        region = self.state.regions[s]
        for table, key in ((self.sites[comp], s), (self.regions[comp], region),
                           (self.hosts[comp], (s, h)), (self.touched, (s, h))):
            n = table.get(key, 0) + delta
            if n:
                table[key] = n
            else:
                del table[key]

    # -- rules ----------------------------------------------------------------------------------

    def site_reason(self, plan: CompPlan, s: int) -> str | None:
        """Returns: why site ``s`` cannot take one more instance of ``plan`` now (None if it can,
        capacity aside)."""
        for other, scope in plan.anti:
            if scope == "site" and s in self.sites[other]:
                return f"anti_affinity with {other} (site)"
            if scope == "region" and self.state.regions[s] in self.regions[other]:
                return f"anti_affinity with {other} (region)"
        for other, scope in plan.aff:
            placed = self.sites[other]
            if not placed:
                continue
            if scope == "region":
                if self.state.regions[s] not in self.regions[other]:
                    return f"affinity with {other} (region)"
            elif s not in placed:
                return f"affinity with {other} ({scope})"
        for other, ms in plan.lat:
            for t in self.sites[other]:
                rtt = self.state.rtt(s, t)
                if rtt is None or rtt > ms:
                    return f"max_latency_ms {ms:g} to {other}"
        return None

    def host_ok(self, plan: CompPlan, s: int, h: int) -> bool:
        """Returns: whether host-scoped rules allow host ``h`` of site ``s``."""
        for other, scope in plan.anti:
            if scope == "host" and (s, h) in self.hosts[other]:
                return False
        for other, scope in plan.aff:
            if scope == "host" and self.hosts[other] and (s, h) not in self.hosts[other]:
                return False
        return True

    def fits(self, plan: CompPlan, s: int, h: int) -> bool:
        st = self.state
        return st.hc[s][h] >= plan.c and st.hm[s][h] >= plan.m and st.hd[s][h] >= plan.d

    def final_violations(self) -> list[str]:
        """Returns: affinity rules broken by the complete placement (those deferred in a cycle)."""
        out = []
        for comp, plan in self.plans.items():
            for other, scope in plan.aff:
                if other == comp:  # self-affinity: all instances share one domain
                    table = {"region": self.regions, "site": self.sites, "host": self.hosts}[scope][comp]
                    if len(table) > 1:
                        out.append(f"{comp}: affinity with itself ({scope}) spans {len(table)} domains")
        for instance, (comp, s, h) in self.slots.items():
            for other, scope in self.plans[comp].aff:
                if other == comp or not self.sites[other]:
                    continue  # affinity to a component with no instances holds trivially
                if scope == "region":
                    ok = self.state.regions[s] in self.regions[other]
                elif scope == "site":
                    ok = s in self.sites[other]
                else:
                    ok = (s, h) in self.hosts[other]
                if not ok:
                    out.append(f"{instance}: affinity with {other} ({scope})")
        return out
