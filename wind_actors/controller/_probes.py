"""Which other sites an agent probes for round-trip times (pure: no threads, no sockets).

A site is told the node addresses of a bounded set of other sites, never of every agent: the
sites it shares a tenant network with first (their latency matters to the placements that put
them together), then a sample chosen by rendezvous hashing, so each site's set is stable as sites
come and go and the probes of all sites together cover the pool evenly. An agent's heartbeat and
probe work is then O(:data:`PROBE_PEERS`) whatever the number of sites.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["PROBE_PEERS", "probe_peers"]

PROBE_PEERS = 8
"""At most this many other sites are probed by each site."""


def probe_peers(site: str, others: Iterable[str], neighbours: Iterable[str],
                limit: int = PROBE_PEERS) -> list[str]:
    """The sites ``site`` should probe.

    Args:
        site: the probing site.
        others: every other known site.
        neighbours: the sites sharing a tenant network with ``site`` (taken first).
        limit: how many at most.

    Returns:
        At most ``limit`` site names, neighbours first (sorted), then the rendezvous sample.
    """
    candidates = sorted(set(others) - {site})
    near = sorted(set(neighbours) & set(candidates))[:limit]
    rest = sorted((s for s in candidates if s not in near), key=lambda s: _weight(site, s))
    return near + rest[:limit - len(near)]


def _weight(site: str, other: str) -> bytes:
    # ordered pairs hash alike both ways, so a and b tend to pick each other: one RTT, two reports
    low, high = sorted((site, other))
    return hashlib.sha256(f"{low}\0{high}".encode()).digest()
