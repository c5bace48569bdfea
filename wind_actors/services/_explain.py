"""Why a placement failed, the way Nomad reports it: how many sites each rule excluded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._constraints import AppRun, CompPlan

__all__ = ["Explanation", "explain_instance", "explain_violations"]


@dataclass(frozen=True)
class Explanation:
    """A failed placement, explained.

    Attributes:
        tenant, app: the application.
        component, instance: the first instance no site could take (None when the failure was
            a rule that only a complete placement can break).
        sites_evaluated: how many sites the pool has.
        excluded: ``(rule, number of sites it excluded)``, largest first; each site is counted
            once, under the first rule it fails (``health``, ``...where.labels k=v``,
            ``anti_affinity with X (site)``, ``exhausted memory_mb``, ...).
        notes: anything else worth knowing (unknown site names, whether the search was exhaustive).
    """

    tenant: str
    app: str
    component: str | None
    instance: str | None
    sites_evaluated: int
    excluded: tuple[tuple[str, int], ...]
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = (f"no site can take instance {self.instance} of component {self.component}"
                if self.instance else "no complete placement satisfies every rule")
        lines = [f"cannot place application {self.tenant}/{self.app}: {what}; nothing was placed",
                 f"  {self.sites_evaluated} site(s) evaluated"]
        lines += [f"  {n} excluded by {rule}" for rule, n in self.excluded]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_mapping(self) -> dict[str, Any]:
        """Returns: the explanation as plain data (for ``--json`` and the wire)."""
        return {"tenant": self.tenant, "app": self.app, "component": self.component,
                "instance": self.instance, "sites_evaluated": self.sites_evaluated,
                "excluded": dict(self.excluded), "notes": list(self.notes)}


def _capacity_reason(run: AppRun, plan: CompPlan, s: int) -> str | None:
    st = run.state
    if st.fc[s] < plan.c:
        return "exhausted cpus"
    if st.fm[s] < plan.m:
        return "exhausted memory_mb"
    if st.fd[s] < plan.d:
        return "exhausted disk_gb"
    hosts = range(len(st.hc[s]))
    if not any(run.fits(plan, s, h) for h in hosts):
        return "exhausted: no single host has room (capacity is fragmented across hosts)"
    if not any(run.fits(plan, s, h) and run.host_ok(plan, s, h) for h in hosts):
        return "host-scoped affinity/anti-affinity"
    return None


def explain_instance(run: AppRun, plan: CompPlan, instance: str, notes: list[str]) -> Explanation:
    """Returns: why no site can take ``instance`` given what ``run`` has placed so far."""
    excluded = dict(plan.excluded)
    for s in plan.candidates:
        reason = run.site_reason(plan, s) or _capacity_reason(run, plan, s) or "not reached by the search"
        excluded[reason] = excluded.get(reason, 0) + 1
    ranked = tuple(sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0])))
    return Explanation(run.app.tenant, run.app.name, plan.name, instance, run.state.n, ranked,
                       tuple(plan.notes + notes))


def explain_violations(run: AppRun, violations: list[str], notes: list[str]) -> Explanation:
    """Returns: an explanation for a complete placement that broke deferred affinity rules."""
    shown = violations[:5] + ([f"... and {len(violations) - 5} more"] if len(violations) > 5 else [])
    return Explanation(run.app.tenant, run.app.name, None, None, run.state.n, (),
                       tuple([f"broken: {v}" for v in shown] + notes))
