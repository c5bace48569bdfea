"""SiteActor: the agent's face to the controller (registered as ``site.SITE``).

It places and removes VM actors when the controller asks, adopts the Wind VMs it finds in the
hypervisor when it (re)starts, and reports to the controller what changed (``Reporter``): VM
state changes within ~0.1 s, and every ``report_interval`` a keepalive that repeats whatever the
controller has not acknowledged, plus capacity and health when they changed. The whole
inventory travels only in a resync (at start, or when the controller asks), cut into parts.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from drivers import Inventory, VMInfo
from drivers.errors import DriverError, VMNotFound
from supervisors import WatchedActor, start_children, terminate_child
from supervisors.errors import SupervisionError
from wind_actors._chunks import budget_of
from wind_actors._paging import fit_page, make_cursor, page_size_of, parse_cursor, take_page
from wind_actors.config import AgentConfig
from wind_actors.errors import WindError
from wind_actors.protocol import (CONTROLLER_ACTOR, EnsureVMs, KillVM, ListVMs, RemoveVMs,
                                  ReportAck, site_actor_name)
from wind_actors.runtime import SYSTEM
from wind_actors.services import Host
from wind_actors.services import SiteReport as PoolReport

from ._context import SiteContext, VMChanged
from ._policy import ACTIVE
from ._reporter import Reporter
from ._ticker import Ticker
from ._vm import DRIVER_TIMEOUT, Teardown

__all__ = ["SiteActor", "WIND_METADATA", "site_report"]

_log = structlog.get_logger("wind.agent.site")

#: Metadata key marking a VM as Wind's (its value is the restart policy).
WIND_METADATA = "wind_restart"

#: Seconds between flushes of VM state changes.
FLUSH_INTERVAL = 0.1

#: Seconds between two full inventories read from the driver (the hypervisor's truth about
#: every VM); the reports in between carry the VMs' news and the driver's capacity only.
INVENTORY_INTERVAL = 30.0

#: VM actors started per message: an EnsureVMs of more queues the rest behind the messages
#: already waiting (acknowledgements, ticks, removals), a batch at a time.
START_BATCH = 256

#: ``ListVMs`` paging: the listing's name in its cursors, VMs per page by default and at most.
VMS_LISTING, VMS_PAGE, VMS_MAX_PAGE = "vms", 1000, 5000


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _StartMore:
    """To itself: start the next batch of the VM actors an ``EnsureVMs`` queued."""


def site_report(config: AgentConfig, inventory: Inventory, rtt_ms: dict[str, float],
                health: str = "up", per_host: Mapping[str | None, int] | None = None) -> PoolReport:
    """Build the pool report of a site from a driver inventory (pure).

    Args:
        config: the agent's config (site, driver, region, labels).
        inventory: the driver's VMs and capacity.
        rtt_ms: measured round-trip times to other nodes.
        health: ``up``, ``degraded``, ``down`` or ``unknown``.
        per_host: active VMs per host, when the caller keeps them (``inventory.vms`` is then
            not read, and may be empty).

    Returns:
        A ``services.SiteReport`` with one ``Host`` per host of the capacity breakdown (or one
        pseudo-host when the driver only reports an aggregate).
    """
    if per_host is None:
        per_host = {}
        for vm in inventory.vms:
            if vm.state.is_active:
                per_host[vm.host] = per_host.get(vm.host, 0) + 1
    cap = inventory.capacity
    if cap.hosts:
        hosts = tuple(Host(h.host, h.total.cpus, h.total.memory_mb, h.total.disk_gb, h.used.cpus,
                           h.used.memory_mb, h.used.disk_gb, per_host.get(h.host, 0))
                      for h in cap.hosts)
    else:
        hosts = (Host("*", cap.total.cpus, cap.total.memory_mb, cap.total.disk_gb, cap.used.cpus,
                      cap.used.memory_mb, cap.used.disk_gb, sum(per_host.values())),)
    return PoolReport(name=config.site, driver=config.driver, hosts=hosts, region=config.region,
                      labels=dict(config.labels), health=health,
                      vm_count=sum(per_host.values()),
                      rtt_ms=dict(rtt_ms), reported_at=time.time())


def _vm_row(vm: VMInfo, ctx: SiteContext, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    known = states.get(vm.name, {})
    return {"name": vm.name, "state": vm.state.value, "host": vm.host, "id": vm.id,
            "managed": WIND_METADATA in vm.metadata, "restarts": ctx.restarts(vm.name),
            "detail": known.get("detail", "")}


class SiteActor(WatchedActor):
    """The site actor of one agent.

    Args:
        ctx: the agent's shared context.
        config: the ``[agent]`` section.
        started_at: when this agent process started (reported, so the controller can tell an
            agent restart from a site actor restart).
    """

    use_daemon_thread = True

    def __init__(self, ctx: SiteContext, config: AgentConfig, started_at: float) -> None:
        super().__init__()
        self.ctx = ctx
        self.config = config
        self.started_at = started_at
        self._states: dict[str, dict[str, Any]] = {}
        self._reporter: Reporter | None = None
        self._ticks = 0
        # Active VMs by host, kept from the VMs' news between two full inventories, so the
        # report of every report_interval costs the driver's capacity, not a walk of every VM.
        self._active: dict[str, str | None] = {}
        self._per_host: Counter[str | None] = Counter()
        self._slow_reports = 0
        self._inventory_every = max(1, round(INVENTORY_INTERVAL / config.report_interval))
        # VMs an EnsureVMs asked for whose actors are not started yet, in order: started a batch
        # per message, so acknowledgements, ticks and removals are handled in between.
        self._to_start: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        self._report_every = max(1, round(config.report_interval / FLUSH_INTERVAL))
        self._ticker: Ticker | None = None
        node = ctx.node
        self._controller = node.ref(f"{CONTROLLER_ACTOR}@{config.controller}")
        self._me = None

    # -- hooks (actor thread) -----------------------------------------------------------------

    def on_start(self) -> None:
        """Register, adopt the Wind VMs already in the hypervisor, start reporting."""
        self.ctx.set_site(self.actor_ref)
        self._me = self.ctx.node.register(site_actor_name(self.config.site), self.actor_ref, access=SYSTEM)
        self._reporter = Reporter(self.config.site, self._controller.tell, self._me, self.started_at,
                                  self.ctx.node.config.max_frame_bytes)
        inventory = self.ctx.driver().inventory().get(timeout=DRIVER_TIMEOUT)
        self._adopt(inventory)
        self._ticker = Ticker(self.actor_ref, FLUSH_INTERVAL, _Tick(), name=f"wind-site-{self.config.site}")
        self._send_report(inventory)

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, *exc_info: Any) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            return self._tick()
        if isinstance(message, VMChanged):
            return self._take(message)
        if isinstance(message, ReportAck):
            return self._reporter.on_ack(message)
        if isinstance(message, Inventory):
            self._adopt(message)  # the driver (re)connected: make sure every VM has its actor
            return None
        if isinstance(message, EnsureVMs):
            return self.ensure(message.vms)
        if isinstance(message, _StartMore):
            return self._start_more()
        if isinstance(message, RemoveVMs):
            return self.remove(message.names)
        if isinstance(message, ListVMs):
            return self.list_vms(message.managed_only, message.cursor, message.page_size)
        if isinstance(message, KillVM):
            return self.kill(message.name)
        return None

    # -- requests -------------------------------------------------------------------------------

    def ensure(self, vms: Any) -> dict[str, Any]:
        """Start a VM actor for each VM that has none (idempotent).

        The first :data:`START_BATCH` are started before this returns, the rest a batch per
        message to itself, so a request of thousands of VMs never keeps this actor from its
        reports and acknowledgements. Returns ``{"started": [names], "queued": how many wait
        for a later batch, "present": [names], "failed": {name: why}}``.
        """
        present, failed = [], {}
        queue_was_empty = not self._to_start
        for item in vms:
            spec = dict(item["spec"])
            restart = item.get("restart", "always")
            metadata = dict(spec.get("metadata") or {})
            metadata[WIND_METADATA] = restart
            spec["metadata"] = metadata
            name = spec["name"]
            if self.ctx.has_vm(name) or name in self._to_start:
                present.append(name)  # live, being restarted by its supervisor, or queued
            elif restart not in self.ctx.sups:
                failed[name] = self._unknown_policy(restart)
            else:
                self._to_start[name] = (spec, restart)
        started: list[str] = []
        if queue_was_empty and self._to_start:  # else a _StartMore is on its way already
            started, more_failed = self._start_batch()
            failed.update(more_failed)
        return {"started": started, "queued": len(self._to_start), "present": present, "failed": failed}

    def _start_more(self) -> None:
        started, failed = self._start_batch()
        for name, error in failed.items():
            _log.error("site.vm_start_failed", site=self.config.site, vm=name, error=error)

    def _start_batch(self) -> tuple[list[str], dict[str, str]]:
        batch = []
        while self._to_start and len(batch) < START_BATCH:
            name, (spec, restart) = self._to_start.popitem(last=False)
            batch.append((name, spec, restart))
        started, failed = self._start_actors(batch)
        if started:
            _log.info("site.vms_started", site=self.config.site, count=len(started),
                      queued=len(self._to_start))
        if self._to_start:
            self.actor_ref.tell(_StartMore())
        return started, failed

    def remove(self, names: Any) -> dict[str, Any]:
        """Tear down each VM and stop its actor; a VM without an actor is removed directly."""
        self._take_changes()  # news posted before the removal must not outlive it in the reports
        removed, absent, failed = [], [], {}
        for name in names:
            if self._to_start.pop(name, None) is not None:
                removed.append(name)  # never started: nothing to tear down
                continue
            ref = self.ctx.vm_ref(name)
            try:
                if ref is not None:
                    ref.ask(Teardown(), timeout=DRIVER_TIMEOUT)
                    self._terminate(ref)
                    removed.append(name)
                elif self._remove_directly(name):
                    removed.append(name)
                else:
                    absent.append(name)
            except (DriverError, WindError, pykka.ActorDeadError, pykka.Timeout) as exc:
                failed[name] = str(exc)
            if ref is not None:
                self.ctx.drop_vm(name, ref, forget=True)
            self._states.pop(name, None)
            self._count(name, None, False)
            self._reporter.vm_removed(name)
        return {"removed": removed, "absent": absent, "failed": failed}

    def _terminate(self, ref: pykka.ActorRef[Any]) -> None:
        for sup in self.ctx.sups.values():
            try:
                terminate_child(sup, ref)
                return
            except SupervisionError:
                continue

    def _remove_directly(self, name: str) -> bool:
        driver = self.ctx.driver()
        try:
            info = driver.info(name).get(timeout=DRIVER_TIMEOUT)
        except VMNotFound:
            return False
        if info.state.value in ACTIVE:
            driver.destroy(name).get(timeout=DRIVER_TIMEOUT)
        driver.undefine(name).get(timeout=DRIVER_TIMEOUT)
        return True

    def list_vms(self, managed_only: bool = True, cursor: str | None = None,
                 page_size: int = 0) -> dict[str, Any]:
        """One page of the inventory straight from the hypervisor, in name order (``ListVMs``).

        Returns:
            ``{"site", "vms": [rows], "next": cursor or None, "total": VMs listed in all}``.

        Raises:
            InvalidPage: a cursor this listing did not give out, or a negative page size.
        """
        after = parse_cursor(VMS_LISTING, cursor)  # before the driver is asked: a bad one costs nothing
        size = page_size_of(page_size, listing=VMS_LISTING, default=VMS_PAGE, maximum=VMS_MAX_PAGE)
        inventory = self.ctx.driver().inventory().get(timeout=DRIVER_TIMEOUT)
        # filtered before paging, so the cursor only ever walks the rows this listing shows
        vms = sorted((vm for vm in inventory.vms if not managed_only or WIND_METADATA in vm.metadata),
                     key=lambda vm: vm.name)

        def build(rows_wanted: int) -> dict[str, Any]:
            page, more = take_page(vms, lambda vm: vm.name, after, rows_wanted)
            return {"site": self.config.site, "vms": [_vm_row(vm, self.ctx, self._states) for vm in page],
                    "next": make_cursor(VMS_LISTING, page[-1].name) if more else None, "total": len(vms)}

        return fit_page(build, size, budget_of(self.ctx.node.config.max_frame_bytes))

    def kill(self, name: str) -> dict[str, Any]:
        """Fault injection: kill a VM through the hypervisor, behind its VM actor's back."""
        hypervisor = None
        if self.config.driver == "sim":
            from drivers.sim import SimHypervisor  # the sim's own crash injection
            endpoint = self.config.driver_config().get("endpoint")
            hypervisor = SimHypervisor.named(endpoint) if endpoint else None
        if hypervisor is not None:
            hypervisor.crash(name, "killed by fault injection")
            how = "sim crash"
        else:
            self.ctx.driver().destroy(name).get(timeout=DRIVER_TIMEOUT)
            how = "destroy"
        _log.warning("site.vm_killed", site=self.config.site, vm=name, how=how)
        return {"killed": name, "site": self.config.site, "how": how}

    # -- adoption and reports -----------------------------------------------------------------

    def _adopt(self, inventory: Inventory) -> None:
        wanted = []
        for vm in inventory.vms:
            restart = vm.metadata.get(WIND_METADATA)
            if restart is None or self.ctx.has_vm(vm.name):
                continue
            spec = {"name": vm.name, "vcpus": vm.vcpus, "memory_mb": vm.memory_mb,
                    "disk_gb": vm.disk_gb, "nics": [n.as_dict() for n in vm.nics],
                    "metadata": dict(vm.metadata)}
            wanted.append((vm.name, spec, restart))
        adopted, failed = self._start_actors(wanted)
        for name, error in failed.items():
            _log.error("site.adopt_failed", site=self.config.site, vm=name, error=error)
        if adopted:
            _log.info("site.vms_adopted", site=self.config.site, count=len(adopted))

    def _unknown_policy(self, restart: str) -> str:
        return f"unknown restart policy {restart!r}; allowed: {', '.join(sorted(self.ctx.sups))}"

    def _start_actors(self, wanted: list[tuple[str, dict[str, Any], str]]) -> tuple[list[str], dict[str, str]]:
        """Start a VM actor for each ``(name, spec, restart)``. Returns the names started and
        ``{name: why}`` for the others."""
        started: list[str] = []
        failed: dict[str, str] = {}
        batches: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for name, spec, restart in wanted:
            if restart in self.ctx.sups:
                batches.setdefault(restart, []).append((name, (spec, restart)))
            else:
                failed[name] = self._unknown_policy(restart)
        # One call per restart policy: the VM actors' on_starts run side by side, so a batch of
        # VMs is one round trip to the supervisor, not one per VM.
        for restart, batch in batches.items():
            try:
                outcomes = start_children(self.ctx.sups[restart], [args for _, args in batch])
            except (SupervisionError, WindError) as exc:
                failed.update((name, str(exc)) for name, _ in batch)
                continue
            for (name, _), outcome in zip(batch, outcomes):
                if isinstance(outcome, BaseException):
                    failed[name] = str(outcome)
                else:
                    started.append(name)
        return started, failed

    def _count(self, name: str, host: str | None, active: bool) -> None:
        if name in self._active:
            self._per_host[self._active.pop(name)] -= 1
        if active:
            self._active[name] = host
            self._per_host[host] += 1

    def _take(self, change: VMChanged) -> None:
        self._count(change.name, change.host, change.state in ACTIVE)
        row = {"name": change.name, "state": change.state, "host": change.host,
               "detail": change.detail, "restarts": change.restarts}
        self._reporter.vm_changed(row)
        if change.state == "removed":
            self._states.pop(change.name, None)
        else:
            self._states[change.name] = row

    def _take_changes(self) -> None:
        for change in self.ctx.take_changes():
            self._take(change)

    def _flush(self) -> None:
        """Take the VMs' news and send the quick delta report."""
        self._take_changes()
        self._reporter.quick()

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % self._report_every != 0:
            self._flush()
            return
        full = self._slow_reports % self._inventory_every == 0
        driver = self.ctx.driver
        try:
            answer = (driver().inventory() if full else driver().capacity()).get(timeout=DRIVER_TIMEOUT)
        except (DriverError, pykka.ActorDeadError, pykka.Timeout) as exc:
            _log.warning("site.inventory_failed" if full else "site.capacity_failed",
                         site=self.config.site, error=str(exc))
            return
        self._slow_reports += 1
        if full:
            self._send_report(answer)
            return
        self._take_changes()
        report = site_report(self.config, Inventory(self.config.site, (), answer, 0),
                             self.ctx.node.peer_rtt_ms(),
                             per_host={h: n for h, n in self._per_host.items() if n > 0})
        self._reporter.capacity(report.to_mapping())
        self._reporter.slow()

    def _send_report(self, inventory: Inventory) -> None:
        self._take_changes()
        self._active = {vm.name: vm.host for vm in inventory.vms if vm.state.is_active}
        self._per_host = Counter(self._active.values())
        report = site_report(self.config, inventory, self.ctx.node.peer_rtt_ms())
        self._reporter.inventory((_vm_row(vm, self.ctx, self._states) for vm in inventory.vms),
                                 report.to_mapping())
        self._reporter.slow()
