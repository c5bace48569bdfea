"""Which other sites an agent probes for round-trip times (pure: no threads, no sockets).

A site is told the node addresses of a bounded set of other sites, never of every agent: the
sites it shares a tenant network with first (their latency matters to the placements that put
them together), then a sample chosen by rendezvous hashing, both in rendezvous order, so each
site's set is stable as sites come and go and the probes of all sites together cover the pool
evenly (ordered by name, every site of a big shared network would pick the same first eight).

:class:`ProbeRelation` keeps who probes whom, and the reverse, incrementally: a site that joins,
leaves or changes its neighbours re-chooses its own set only, and the sites whose trust set that
changes are returned, so the controller re-tells those few and never recomputes every site's set.
A site trusts the sites it probes and the sites that probe it (both directions of a heartbeat
need the other's key); at most :data:`PROBE_PEERS` out and :data:`PROBED_BY` in, so an agent's
heartbeat, probe and trust work is O(1) whatever the number of sites.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable

__all__ = ["PROBED_BY", "PROBE_PEERS", "ProbeRelation", "probe_peers"]

PROBE_PEERS = 8
"""At most this many other sites are probed by each site."""

PROBED_BY = 2 * PROBE_PEERS
"""At most this many other sites probe one site (a site at this bound is not chosen)."""


def probe_peers(site: str, others: Iterable[str], neighbours: Iterable[str],
                limit: int = PROBE_PEERS, admits: Callable[[str], bool] | None = None) -> list[str]:
    """The sites ``site`` should probe.

    Args:
        site: the probing site.
        others: every other known site.
        neighbours: the sites sharing a tenant network with ``site`` (taken first).
        limit: how many at most.
        admits: whether a site may be chosen (a site probed by too many already may not);
            default: any.

    Returns:
        At most ``limit`` site names: neighbours first, then the rendezvous sample, each part
        in rendezvous order (the same for any order of ``others``).
    """
    known = others if isinstance(others, (set, frozenset, dict)) else set(others)

    def allowed(s: str) -> bool:
        return s != site and s in known and (admits is None or admits(s))

    weight = _weigher(site)
    near = heapq.nsmallest(limit, (s for s in set(neighbours) if allowed(s)), key=weight)
    if len(near) >= limit:  # enough neighbours: the other sites need not even be looked at
        return near
    taken = set(near)
    rest = heapq.nsmallest(limit - len(near), (s for s in known if s not in taken and allowed(s)),
                           key=weight)
    return near + rest


def _weigher(site: str) -> Callable[[str], bytes]:
    def weight(other: str) -> bytes:
        # unordered pairs hash alike both ways, so a and b tend to pick each other: one RTT, two
        # reports, and a site's in-degree stays close to its out-degree
        low, high = (site, other) if site < other else (other, site)
        return hashlib.blake2b(f"{low}\0{high}".encode(), digest_size=8).digest()
    return weight


class ProbeRelation:
    """Who probes whom among the known sites, kept incrementally (see the module docstring).

    Args:
        limit: most sites one site probes.
        probed_by: most sites that probe one site.
    """

    def __init__(self, limit: int = PROBE_PEERS, probed_by: int = PROBED_BY) -> None:
        self.limit, self.probed_by_limit = limit, probed_by
        self._out: dict[str, tuple[str, ...]] = {}
        self._in: dict[str, set[str]] = {}
        self._near: dict[str, frozenset[str]] = {}

    def __contains__(self, site: object) -> bool:
        return site in self._out

    def __len__(self) -> int:
        return len(self._out)

    def sites(self) -> list[str]:
        """Every site in the relation."""
        return list(self._out)

    def probes(self, site: str) -> tuple[str, ...]:
        """The sites ``site`` probes (connects to), best first; empty for an unknown site."""
        return self._out.get(site, ())

    def probed_by(self, site: str) -> frozenset[str]:
        """The sites that probe ``site``."""
        return frozenset(self._in.get(site, ()))

    def trusts(self, site: str) -> frozenset[str]:
        """The sites ``site`` must trust: those it probes and those probing it."""
        return frozenset(self._out.get(site, ())).union(self._in.get(site, ()))

    def join(self, site: str, neighbours: Iterable[str] = ()) -> set[str]:
        """Add ``site``, or note its new neighbours, and (re)choose what it probes.

        Returns:
            The sites whose trust set may have changed (``site`` itself when it is new or its
            probes changed); empty when nothing did (a known site, the same neighbours).
        """
        near = frozenset(neighbours) - {site}
        new = site not in self._out
        if not new and near == self._near[site]:
            return set()
        if new:
            self._out[site] = ()
            self._in.setdefault(site, set())
        self._near[site] = near
        return self._choose(site) | ({site} if new else set())

    def leave(self, site: str) -> set[str]:
        """Remove ``site``; the sites that probed it choose a replacement.

        Returns:
            The sites whose trust set may have changed (``site`` not among them).
        """
        if site not in self._out:
            return set()
        affected = set(self._out.pop(site))
        for other in affected:
            self._in[other].discard(site)
        probers = self._in.pop(site)
        del self._near[site]
        for other in probers:
            self._out[other] = tuple(s for s in self._out[other] if s != site)
        affected |= probers
        for other in sorted(probers):  # sorted: the same relation whatever the set order
            # a top-up, not a new choice: the probes it keeps are told nothing new
            affected |= self._choose(other, keep=self._out[other])
        return affected

    def _choose(self, site: str, keep: tuple[str, ...] = ()) -> set[str]:
        old = self._out[site]
        for other in old:
            if other not in keep:
                self._in[other].discard(site)
        kept = set(keep)
        chosen = list(keep) + probe_peers(
            site, self._out, self._near[site], self.limit - len(keep),
            admits=lambda s: s not in kept and len(self._in[s]) < self.probed_by_limit)
        for other in chosen:
            self._in[other].add(site)
        self._out[site] = tuple(chosen)
        changed = set(old).symmetric_difference(chosen)
        return changed | {site} if changed else set()
