"""The global resource pool: every site's capacity, health and RTT, built from site reports.

Sites differ by orders of magnitude (one libvirt host next to a data centre of thousands), so the
pool keeps the per-host breakdown rather than one aggregate per site: a VM needs one host with room
for it, and 1,000 hosts with one free vCPU each cannot take a 4-vCPU VM. A cloud endpoint that only
knows a quota reports a single pseudo-host (``SiteReport.aggregate``).

Everything here is an immutable value; updates return a new ``Pool``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Mapping, NamedTuple

__all__ = ["Resources", "Host", "SiteReport", "Site", "Pool", "HEALTHY", "DRIVER_KINDS"]

HEALTHY = "up"
_HEALTH = ("up", "degraded", "down", "unknown")
DRIVER_KINDS = {"libvirt": "hypervisor", "sim": "hypervisor", "libcloud": "cloud", "cloud": "cloud"}


class Resources(NamedTuple):
    """An amount of vCPUs, memory and disk."""

    cpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, other: tuple) -> "Resources":  # type: ignore[override]
        return Resources(self[0] + other[0], self[1] + other[1], self[2] + other[2])

    def __sub__(self, other: tuple) -> "Resources":
        return Resources(self[0] - other[0], self[1] - other[1], self[2] - other[2])

    def fits_in(self, other: tuple) -> bool:
        """Returns: whether every dimension is at most ``other``'s."""
        return self[0] <= other[0] and self[1] <= other[1] and self[2] <= other[2]


@dataclass(frozen=True)
class Host:
    """One hypervisor host of a site: its total and used resources."""

    name: str
    cpus: int
    memory_mb: int
    disk_gb: int
    used_cpus: int = 0
    used_memory_mb: int = 0
    used_disk_gb: int = 0
    vms: int = 0

    @property
    def total(self) -> Resources:
        return Resources(self.cpus, self.memory_mb, self.disk_gb)

    @property
    def used(self) -> Resources:
        return Resources(self.used_cpus, self.used_memory_mb, self.used_disk_gb)

    @property
    def free(self) -> Resources:
        return self.total - self.used

    def with_used(self, delta: Resources, vms: int) -> "Host":
        """Returns: this host with ``delta`` more resources and ``vms`` more VMs in use."""
        return replace(self, used_cpus=self.used_cpus + delta.cpus,
                       used_memory_mb=self.used_memory_mb + delta.memory_mb,
                       used_disk_gb=self.used_disk_gb + delta.disk_gb, vms=self.vms + vms)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Host":
        """Build a host from plain data (as it crosses the wire)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class SiteReport:
    """What an agent reports about its site; plain data so it can cross the wire.

    Attributes:
        name: the site name (unique in the pool).
        driver: the driver name (``libvirt``, ``libcloud``, ``sim`` ...).
        hosts: per-host capacity; at least one.
        region: the region the site belongs to.
        labels: free-form ``key: value`` labels that descriptors select on.
        health: ``up`` (schedulable), ``degraded``, ``down`` or ``unknown``.
        kind: ``hypervisor`` or ``cloud``; derived from the driver when None.
        vm_count: VMs running at the site (Wind's and others').
        rtt_ms: measured round-trip time from this site to other sites.
        reported_at: the agent's timestamp (seconds).
    """

    name: str
    driver: str
    hosts: tuple[Host, ...]
    region: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    health: str = HEALTHY
    kind: str | None = None
    vm_count: int | None = None
    rtt_ms: Mapping[str, float] = field(default_factory=dict)
    reported_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError(f"site {self.name!r} reported no hosts; at least one is required "
                             "(use SiteReport.aggregate for a quota-only endpoint)")
        if self.health not in _HEALTH:
            raise ValueError(f"site {self.name!r} health {self.health!r} is not one of {_HEALTH}")

    @classmethod
    def aggregate(cls, name: str, driver: str, total: Resources, used: Resources = Resources(),
                  **kw: Any) -> "SiteReport":
        """A site that only knows an aggregate (a cloud quota): one pseudo-host named ``*``."""
        host = Host("*", total.cpus, total.memory_mb, total.disk_gb, used.cpus, used.memory_mb, used.disk_gb)
        return cls(name=name, driver=driver, hosts=(host,), **kw)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "SiteReport":
        """Build a report from plain data (``to_mapping``'s output)."""
        kw = dict(data)
        kw["hosts"] = tuple(h if isinstance(h, Host) else Host.from_mapping(h) for h in kw.get("hosts", ()))
        return cls(**kw)

    def to_mapping(self) -> dict[str, Any]:
        """Returns: the report as plain data (dicts, lists, numbers, strings)."""
        return {"name": self.name, "driver": self.driver, "region": self.region,
                "labels": dict(self.labels), "health": self.health, "kind": self.kind,
                "vm_count": self.vm_count, "rtt_ms": dict(self.rtt_ms), "reported_at": self.reported_at,
                "hosts": [dict(h.__dict__) for h in self.hosts]}


@dataclass(frozen=True)
class Site:
    """A site as the pool sees it: a report plus aggregates computed once."""

    name: str
    driver: str
    kind: str
    region: str
    labels: Mapping[str, str]
    hosts: tuple[Host, ...]
    health: str
    vm_count: int
    reported_at: float
    total: Resources
    used: Resources

    @classmethod
    def from_report(cls, report: SiteReport) -> "Site":
        total, used, vms = Resources(), Resources(), 0
        for host in report.hosts:
            total, used, vms = total + host.total, used + host.used, vms + host.vms
        return cls(name=report.name, driver=report.driver,
                   kind=report.kind or DRIVER_KINDS.get(report.driver, "hypervisor"),
                   region=report.region, labels=dict(report.labels), hosts=tuple(report.hosts),
                   health=report.health, vm_count=report.vm_count if report.vm_count is not None else vms,
                   reported_at=report.reported_at, total=total, used=used)

    @property
    def free(self) -> Resources:
        return self.total - self.used

    @property
    def schedulable(self) -> bool:
        """Only sites reporting ``up`` take new VMs."""
        return self.health == HEALTHY

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"site {self.name!r} has no host {name!r}")


@dataclass(frozen=True)
class Pool:
    """Every site and the site-to-site RTT matrix; an immutable value.

    ``rtt`` holds directed measurements ``(from, to) -> ms``; ``rtt_ms`` reads the larger of
    the two directions, because a latency bound must hold both ways.
    """

    sites: Mapping[str, Site] = field(default_factory=dict)
    rtt: Mapping[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def from_reports(cls, reports: Iterable[SiteReport]) -> "Pool":
        """Returns: a pool built from the latest report of each site."""
        pool = cls()
        for report in reports:
            pool = pool.with_report(report)
        return pool

    def with_report(self, report: SiteReport) -> "Pool":
        """Returns: this pool with ``report`` replacing the site's previous one."""
        sites = dict(self.sites)
        sites[report.name] = Site.from_report(report)
        rtt = {k: v for k, v in self.rtt.items() if k[0] != report.name}
        for other, ms in report.rtt_ms.items():
            if other != report.name:
                rtt[(report.name, other)] = float(ms)
        return Pool(sites, rtt)

    def without_site(self, name: str) -> "Pool":
        """Returns: this pool without site ``name`` and its RTT entries."""
        sites = {k: v for k, v in self.sites.items() if k != name}
        return Pool(sites, {k: v for k, v in self.rtt.items() if name not in k})

    def with_site_health(self, name: str, health: str) -> "Pool":
        """Returns: this pool with site ``name`` marked ``health`` (e.g. ``down`` when its node is lost)."""
        if health not in _HEALTH:
            raise ValueError(f"health {health!r} is not one of {_HEALTH}")
        sites = dict(self.sites)
        sites[name] = replace(sites[name], health=health)
        return Pool(sites, self.rtt)

    def rtt_ms(self, a: str, b: str) -> float | None:
        """The RTT between two sites: 0 for the same site, the measured value (the larger
        direction), else an upper bound inferred through one relay site, else None.

        Each site probes a bounded set of others (``controller._probes``), not all of them, so
        most pairs of a large pool are never measured. RTTs obey the triangle inequality closely
        enough that ``rtt(a, c) + rtt(c, b)`` over the best measured relay ``c`` bounds ``rtt(a,
        b)`` from above. An upper bound is what a ``max_latency_ms`` rule (the only user) may
        rely on: a pair it admits is within the bound, never beyond it.
        """
        if a == b:
            return 0.0
        links = self._links
        near_a, near_b = links.get(a), links.get(b)
        if near_a is None or near_b is None:
            return None
        direct = near_a.get(b)
        if direct is not None:
            return direct
        if len(near_a) > len(near_b):
            near_a, near_b = near_b, near_a
        relayed = [ms + near_b[c] for c, ms in near_a.items() if c in near_b]
        return min(relayed) if relayed else None

    @cached_property
    def _links(self) -> dict[str, dict[str, float]]:
        """Measured RTTs per site, both directions merged (the larger): built once per pool."""
        links: dict[str, dict[str, float]] = {}
        for (a, b), ms in self.rtt.items():
            if a == b:
                continue
            for x, y in ((a, b), (b, a)):
                row = links.setdefault(x, {})
                row[y] = max(row.get(y, ms), ms)
        return links

    def with_usage(self, slots: Iterable[Any], sign: int = 1) -> "Pool":
        """Returns: this pool with each slot's resources reserved (``sign=1``) or released (``-1``).

        Args:
            slots: objects with ``site``, ``host`` and ``resources`` (scheduler ``Slot``s).
        """
        by_site: dict[str, dict[str, tuple[Resources, int]]] = {}
        for slot in slots:
            hosts = by_site.setdefault(slot.site, {})
            res, n = hosts.get(slot.host, (Resources(), 0))
            hosts[slot.host] = (res + slot.resources, n + 1)
        sites = dict(self.sites)
        for name, deltas in by_site.items():
            site = sites[name]
            hosts = tuple(
                h.with_used(Resources(*(sign * x for x in deltas[h.name][0])), sign * deltas[h.name][1])
                if h.name in deltas else h for h in site.hosts)
            total_delta = Resources()
            vms = 0
            for res, n in deltas.values():
                total_delta, vms = total_delta + res, vms + n
            sites[name] = replace(site, hosts=hosts, vm_count=site.vm_count + sign * vms,
                                  used=site.used + Resources(*(sign * x for x in total_delta)))
        return Pool(sites, self.rtt)

    def table(self) -> list[dict[str, Any]]:
        """Returns: one row per site for ``wind sites``: site, driver, kind, region, hosts,
        capacity, used, VMs, health, sorted by site name."""
        return [{"site": s.name, "driver": s.driver, "kind": s.kind, "region": s.region,
                 "hosts": len(s.hosts), "capacity": s.total._asdict(), "used": s.used._asdict(),
                 "vms": s.vm_count, "health": s.health, "labels": dict(s.labels)}
                for s in sorted(self.sites.values(), key=lambda s: s.name)]
