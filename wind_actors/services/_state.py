"""The scheduler's working copy of the pool: flat per-site and per-host arrays.

Kept as parallel lists indexed by site number (sites sorted by name) because the scheduler reads
them a few hundred thousand times a second; objects per host would cost several times more.
"""

from __future__ import annotations

import random

from ._pool import Host, Pool, Resources, Site

__all__ = ["PoolState"]


class PoolState:
    """Mutable arrays mirroring a ``Pool``; ``take``/``give`` move resources on one host.

    Args:
        pool: the pool to copy.
        seed: orders ties between otherwise equal sites, so results are reproducible.
    """

    def __init__(self, pool: Pool, seed: int = 0) -> None:
        sites = sorted(pool.sites.values(), key=lambda s: s.name)
        self.pool = pool
        self.sites: list[Site] = sites
        self.n = len(sites)
        self.names = [s.name for s in sites]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.regions = [s.region for s in sites]
        self.host_names = [[h.name for h in s.hosts] for s in sites]
        self.host_index = [{h.name: j for j, h in enumerate(s.hosts)} for s in sites]
        self.hc = [[h.cpus - h.used_cpus for h in s.hosts] for s in sites]
        self.hm = [[h.memory_mb - h.used_memory_mb for h in s.hosts] for s in sites]
        self.hd = [[h.disk_gb - h.used_disk_gb for h in s.hosts] for s in sites]
        self.hvms = [[h.vms for h in s.hosts] for s in sites]
        self.fc = [sum(x) for x in self.hc]
        self.fm = [sum(x) for x in self.hm]
        self.fd = [sum(x) for x in self.hd]
        # Inverse totals so utilization is three multiplications; 0 marks a dimension the site lacks.
        self.ic = [1.0 / s.total.cpus if s.total.cpus > 0 else 0.0 for s in sites]
        self.im = [1.0 / s.total.memory_mb if s.total.memory_mb > 0 else 0.0 for s in sites]
        self.id = [1.0 / s.total.disk_gb if s.total.disk_gb > 0 else 0.0 for s in sites]
        self.cursor = [0] * self.n
        self.version = [0] * self.n
        order = list(range(self.n))
        random.Random(seed).shuffle(order)
        self.rank = [0] * self.n
        for pos, i in enumerate(order):
            self.rank[i] = pos
        self._rtt: dict[tuple[int, int], float | None] = {}

    def rtt(self, a: int, b: int) -> float | None:
        """Returns: the RTT between sites ``a`` and ``b`` in ms (measured, or bounded through a
        relay: ``Pool.rtt_ms``), None if neither."""
        key = (a, b) if a <= b else (b, a)
        try:
            return self._rtt[key]
        except KeyError:
            value = self._rtt[key] = self.pool.rtt_ms(self.names[a], self.names[b])
            return value

    def utilization_after(self, s: int, c: int, m: int, d: int) -> float:
        """Returns: the site's dominant-resource utilization if ``(c, m, d)`` were added."""
        ic, im, idd = self.ic[s], self.im[s], self.id[s]
        uc = 1.0 - (self.fc[s] - c) * ic if ic else 0.0
        um = 1.0 - (self.fm[s] - m) * im if im else 0.0
        ud = 1.0 - (self.fd[s] - d) * idd if idd else 0.0
        return max(uc, um, ud)

    def take(self, s: int, h: int, c: int, m: int, d: int, vms: int = 1) -> None:
        """Reserve ``(c, m, d)`` for ``vms`` VMs on host ``h`` of site ``s`` (negative gives back)."""
        self.hc[s][h] -= c
        self.hm[s][h] -= m
        self.hd[s][h] -= d
        self.hvms[s][h] += vms
        self.fc[s] -= c
        self.fm[s] -= m
        self.fd[s] -= d
        self.version[s] += 1

    def give(self, s: int, h: int, c: int, m: int, d: int) -> None:
        """Release what ``take`` reserved for one VM."""
        self.take(s, h, -c, -m, -d, -1)

    def to_pool(self) -> Pool:
        """Returns: the pool as this state sees it (reserved resources included)."""
        sites = {}
        for i, site in enumerate(self.sites):
            hosts = tuple(
                Host(h.name, h.cpus, h.memory_mb, h.disk_gb, h.cpus - self.hc[i][j],
                     h.memory_mb - self.hm[i][j], h.disk_gb - self.hd[i][j], self.hvms[i][j])
                for j, h in enumerate(site.hosts))
            used = Resources(site.total.cpus - self.fc[i], site.total.memory_mb - self.fm[i],
                             site.total.disk_gb - self.fd[i])
            vms = site.vm_count + sum(self.hvms[i]) - sum(h.vms for h in site.hosts)
            sites[site.name] = Site(site.name, site.driver, site.kind, site.region, site.labels, hosts,
                                    site.health, vms, site.reported_at, site.total, used)
        return Pool(sites, self.pool.rtt)
