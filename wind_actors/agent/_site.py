"""SiteActor: the agent's face to the controller (registered as ``site.SITE``).

It places and removes VM actors when the controller asks, adopts the Wind VMs it finds in the
hypervisor when it (re)starts, and reports to the controller what changed (``Reporter``): VM
state changes within ~0.1 s, and every ``report_interval`` a keepalive that repeats whatever the
controller has not acknowledged, plus capacity and health when they changed. The whole
inventory travels only in a resync (at start, or when the controller asks), cut into parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from drivers import Inventory, VMInfo
from drivers.errors import DriverError, VMNotFound
from supervisors import WatchedActor, start_child, terminate_child
from supervisors.errors import SupervisionError
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


@dataclass(frozen=True)
class _Tick:
    pass


def site_report(config: AgentConfig, inventory: Inventory, rtt_ms: dict[str, float],
                health: str = "up") -> PoolReport:
    """Build the pool report of a site from a driver inventory (pure).

    Args:
        config: the agent's config (site, driver, region, labels).
        inventory: the driver's VMs and capacity.
        rtt_ms: measured round-trip times to other nodes.
        health: ``up``, ``degraded``, ``down`` or ``unknown``.

    Returns:
        A ``services.SiteReport`` with one ``Host`` per host of the capacity breakdown (or one
        pseudo-host when the driver only reports an aggregate).
    """
    per_host: dict[str | None, int] = {}
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
                      vm_count=sum(1 for v in inventory.vms if v.state.is_active),
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
            row = {"name": message.name, "state": message.state, "host": message.host,
                   "detail": message.detail, "restarts": message.restarts}
            self._reporter.vm_changed(row)
            if message.state == "removed":
                self._states.pop(message.name, None)
            else:
                self._states[message.name] = row
            return None
        if isinstance(message, ReportAck):
            return self._reporter.on_ack(message)
        if isinstance(message, Inventory):
            self._adopt(message)  # the driver (re)connected: make sure every VM has its actor
            return None
        if isinstance(message, EnsureVMs):
            return self.ensure(message.vms)
        if isinstance(message, RemoveVMs):
            return self.remove(message.names)
        if isinstance(message, ListVMs):
            return self.list_vms(message.managed_only)
        if isinstance(message, KillVM):
            return self.kill(message.name)
        return None

    # -- requests -------------------------------------------------------------------------------

    def ensure(self, vms: Any) -> dict[str, Any]:
        """Start a VM actor for each VM that has none (idempotent)."""
        started, present, failed = [], [], {}
        for item in vms:
            spec = dict(item["spec"])
            restart = item.get("restart", "always")
            metadata = dict(spec.get("metadata") or {})
            metadata[WIND_METADATA] = restart
            spec["metadata"] = metadata
            name = spec["name"]
            if self.ctx.has_vm(name):  # live, or being restarted by its supervisor
                present.append(name)
                continue
            try:
                start_child(self.ctx.sups[restart], spec, restart)
                started.append(name)
            except (SupervisionError, WindError, KeyError, ValueError) as exc:
                failed[name] = str(exc)
        if started:
            _log.info("site.vms_started", site=self.config.site, count=len(started))
        return {"started": started, "present": present, "failed": failed}

    def remove(self, names: Any) -> dict[str, Any]:
        """Tear down each VM and stop its actor; a VM without an actor is removed directly."""
        removed, absent, failed = [], [], {}
        for name in names:
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

    def list_vms(self, managed_only: bool = True) -> dict[str, Any]:
        """Returns: ``{"site", "vms": [...]}`` straight from the hypervisor."""
        inventory = self.ctx.driver().inventory().get(timeout=DRIVER_TIMEOUT)
        rows = [_vm_row(vm, self.ctx, self._states) for vm in inventory.vms]
        return {"site": self.config.site, "vms": [r for r in rows if r["managed"] or not managed_only]}

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
        adopted = 0
        for vm in inventory.vms:
            restart = vm.metadata.get(WIND_METADATA)
            if restart is None or self.ctx.has_vm(vm.name):
                continue
            spec = {"name": vm.name, "vcpus": vm.vcpus, "memory_mb": vm.memory_mb,
                    "disk_gb": vm.disk_gb, "nics": [n.as_dict() for n in vm.nics],
                    "metadata": dict(vm.metadata)}
            try:
                start_child(self.ctx.sups[restart], spec, restart)
                adopted += 1
            except (SupervisionError, WindError, KeyError) as exc:
                _log.error("site.adopt_failed", site=self.config.site, vm=vm.name, error=str(exc))
        if adopted:
            _log.info("site.vms_adopted", site=self.config.site, count=adopted)

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % self._report_every != 0:
            self._reporter.quick()
        else:
            try:
                inventory = self.ctx.driver().inventory().get(timeout=DRIVER_TIMEOUT)
            except (DriverError, pykka.ActorDeadError, pykka.Timeout) as exc:
                _log.warning("site.inventory_failed", site=self.config.site, error=str(exc))
                return
            self._send_report(inventory)

    def _send_report(self, inventory: Inventory) -> None:
        report = site_report(self.config, inventory, self.ctx.node.peer_rtt_ms())
        self._reporter.inventory((_vm_row(vm, self.ctx, self._states) for vm in inventory.vms),
                                 report.to_mapping())
        self._reporter.slow()
