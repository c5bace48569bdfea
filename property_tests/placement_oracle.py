"""An independent oracle for placement rules, shared by the scheduler and lost-site property tests.

Written from the descriptor's meaning, not from the scheduler's code, so a scheduler bug cannot
hide in both. An assignment maps instance ids (``web-0``) to ``(site, host)``.
"""

from __future__ import annotations

import itertools


def domain(pool, site, host, scope):
    """The failure domain of a placement at ``scope`` (host, site or region)."""
    return {"host": (site, host), "site": site, "region": pool.sites[site].region}[scope]


def rtt_ok(pool, a, b, ms):
    """Whether the measured round trip between sites ``a`` and ``b`` is known and within ``ms``."""
    rtt = pool.rtt_ms(a, b)
    return rtt is not None and rtt <= ms


def where_ok(site, where):
    """Whether ``site`` satisfies a ``where`` clause."""
    return ((not where.sites or site.name in where.sites) and (not where.regions or site.region in where.regions)
            and all(site.labels.get(k) == v for k, v in where.labels)
            and (not where.drivers or site.driver in where.drivers) and (not where.kinds or site.kind in where.kinds))


def instances_by_component(app, assignment):
    """``component -> [instance ids]`` of the assignment."""
    return {c.name: [i for i in assignment if i.rsplit("-", 1)[0] == c.name] for c in app.components}


def relation_violations(pool, app, assignment):
    """Anti-affinity, affinity and component-to-component latency rules the assignment breaks."""
    out = []
    of = instances_by_component(app, assignment)
    for c in app.components:
        for rel in c.placement.anti_affinity:
            for a, b in itertools.product(of[c.name], of[rel.component]):
                if a != b and domain(pool, *assignment[a], rel.scope) == domain(pool, *assignment[b], rel.scope):
                    out.append(f"{a}/{b}: anti-affinity {rel.scope}")
        for rel in c.placement.affinity:
            if rel.component == c.name:
                if len({domain(pool, *assignment[a], rel.scope) for a in of[c.name]}) > 1:
                    out.append(f"{c.name}: self-affinity {rel.scope}")
            elif of[rel.component]:
                targets = {domain(pool, *assignment[b], rel.scope) for b in of[rel.component]}
                out += [f"{a}: affinity {rel.scope}" for a in of[c.name]
                        if domain(pool, *assignment[a], rel.scope) not in targets]
        for bound in c.placement.max_latency:
            if bound.component is None:
                continue
            for a, b in itertools.product(of[c.name], of[bound.component]):
                if a != b and not rtt_ok(pool, assignment[a][0], assignment[b][0], bound.ms):
                    out.append(f"{a}/{b}: latency")
    return out
