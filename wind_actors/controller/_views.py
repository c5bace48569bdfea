"""Pure helpers of the controller: the pool it schedules into, VM specs, status rows.

No threads and no sockets here, so tests and Hypothesis call these directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from wind_actors.services import AppDescriptor, ObservedVM, Pool, SiteReport, Slot, VMRecord

__all__ = ["SiteView", "Snapshot", "build_pool", "vm_spec", "observed_for", "app_row",
           "ALIVE", "app_prefix", "slots_of"]

#: VM states that count as "running" for progress and status.
ALIVE = frozenset({"running", "paused", "migrating"})


@dataclass(frozen=True)
class SiteView:
    """What the controller knows about one site.

    Attributes:
        name: the site.
        node: the agent's node name.
        agent: a ref to its site actor.
        report: its latest ``services.SiteReport``.
        vms: its latest VM rows by name (``name, state, host, managed, restarts, detail``).
        up: whether it reported recently and is healthy.
        last_seen: monotonic time of its last message.
        reported: the VMs active in its last *full* report, whose resources that report's
            capacity already counts (a VM seen running only through a later update is not).
    """

    name: str
    node: str
    agent: Any
    report: SiteReport
    vms: Mapping[str, Mapping[str, Any]]
    up: bool
    last_seen: float
    reported: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of every site, handed to the application actors on each tick."""

    sites: Mapping[str, SiteView] = field(default_factory=dict)

    @property
    def sites_up(self) -> frozenset[str]:
        """Returns: the names of the sites that are up."""
        return frozenset(n for n, s in self.sites.items() if s.up)

    def vm(self, name: str, site: str | None) -> Mapping[str, Any] | None:
        """Returns: the row of VM ``name`` at ``site`` (None if that site does not report it)."""
        view = self.sites.get(site) if site is not None else None
        return view.vms.get(name) if view is not None else None


def app_prefix(tenant: str, app: str) -> str:
    """Returns: the prefix of every VM name of an application (``tenant.app.``)."""
    return f"{tenant}.{app}."


def build_pool(snapshot: Snapshot, pending: Iterable[tuple[str, Slot]] = ()) -> Pool:
    """The pool to schedule into: every site's report, down sites marked ``down``, plus the
    resources of placed VMs that no report shows running yet (so two deploys in a row never
    both count on the same free room).

    Args:
        snapshot: the sites.
        pending: ``(vm name, slot)`` of every stored placement; a slot whose VM is not active in
            its site's last full report is reserved on its host.

    Returns:
        The pool, with RTTs keyed by site names.
    """
    node_to_site = {v.node: n for n, v in snapshot.sites.items()}
    reports = []
    for name, view in snapshot.sites.items():
        report = view.report
        rtt = {node_to_site[k]: ms for k, ms in report.rtt_ms.items() if k in node_to_site}
        health = report.health if view.up else "down"
        reports.append(SiteReport(name=name, driver=report.driver, hosts=report.hosts,
                                  region=report.region, labels=report.labels, health=health,
                                  kind=report.kind, vm_count=report.vm_count, rtt_ms=rtt,
                                  reported_at=report.reported_at))
    pool = Pool.from_reports(reports)
    reserve = []
    for name, slot in pending:
        site = pool.sites.get(slot.site)
        if site is None or not any(h.name == slot.host for h in site.hosts):
            continue
        if name not in snapshot.sites[slot.site].reported:
            reserve.append(slot)
    return pool.with_usage(reserve) if reserve else pool


def vm_spec(app: AppDescriptor, rec: VMRecord) -> dict[str, Any]:
    """The ``VMSpec.as_dict()`` of one VM record of ``app``.

    NICs carry the tenant network as ``TENANT.NETWORK`` (the overlay of issue 6 gives them a
    bridge or tap); metadata names the tenant, app, component and instance, and pins the host
    the scheduler chose (drivers with several hosts honour it).
    """
    comp = app.component(rec.component)
    spec: dict[str, Any] = {
        "name": rec.name, "vcpus": comp.vcpus, "memory_mb": comp.memory_mb, "disk_gb": comp.disk_gb,
        "image": comp.image, "kernel": comp.kernel, "initrd": comp.initrd, "cmdline": comp.cmdline,
        "nics": [{"network": f"{app.tenant}.{net}", "mac": None, "bridge": None, "tap": None}
                 for net in comp.networks],
        "metadata": {"tenant": app.tenant, "app": app.name, "component": comp.name,
                     "instance": rec.instance},
        "console_log": None,
    }
    if rec.host is not None and rec.host != "*":
        spec["metadata"]["host"] = rec.host
    return spec


def observed_for(snapshot: Snapshot, prefix: str) -> list[ObservedVM]:
    """Returns: every managed VM whose name starts with ``prefix``, at every site that is up."""
    out = []
    for name, view in snapshot.sites.items():
        if not view.up:
            continue
        for vm, row in view.vms.items():
            if vm.startswith(prefix):
                out.append(ObservedVM(vm, name, str(row.get("state", "unknown")),
                                      bool(row.get("managed", True))))
    return out


def app_row(tenant: str, app: str, state: str, op: str | None, records: Iterable[VMRecord],
            snapshot: Snapshot) -> dict[str, Any]:
    """The status of one application as plain data (``wind app status``)."""
    vms = []
    running = 0
    for rec in records:
        row = snapshot.vm(rec.name, rec.site) or {}
        site_up = rec.site in snapshot.sites and snapshot.sites[rec.site].up
        vm_state = row.get("state") or ("pending" if site_up else "unknown")
        if rec.site is not None and not site_up:
            vm_state = "lost"
        if vm_state in ALIVE:
            running += 1
        vms.append({"name": rec.name, "instance": rec.instance, "component": rec.component,
                    "site": rec.site, "host": row.get("host") or rec.host, "state": vm_state,
                    "id": row.get("id"),
                    "restarts": int(row.get("restarts", 0) or 0), "detail": row.get("detail", ""),
                    "restart": rec.restart})
    return {"tenant": tenant, "app": app, "state": state, "op": op, "vms": vms,
            "running": running, "total": len(vms)}


def slots_of(placement: Mapping[str, Any] | None) -> list[Slot]:
    """Returns: the slots of a stored placement mapping."""
    if not placement:
        return []
    return [Slot.from_mapping(s) for s in placement.get("slots", ())]
