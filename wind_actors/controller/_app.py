"""AppActor: one tenant application on the controller, watching its VMs through remote monitors.

It keeps its descriptor, VM records and deploy operation in memory (read once when it starts,
or on :class:`Reload` after the controller moved VMs; its own changes are written through to the
store) and reconciles them against what the sites report (``services.reconcile``) when the
controller tells it to: on a change that concerns it (one of its VMs changed, a site went up or
down, a deploy), on every tick while it has work under way (it says so with :class:`AppBusy`),
and on the slow safety pass. VMs running where they should are adopted (a remote monitor on
their VM actor), missing ones are asked for (``EnsureVMs``, idempotent on the agent), duplicates
are removed. A controller restarted after SIGKILL starts one AppActor per stored application and
they adopt what still runs: nothing is lost and nothing is started twice.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import structlog

from supervisors import Down, WatchedActor
from wind_actors._chunks import OVERSIZE_FIX, budget_of, chunks_by_size
from wind_actors.errors import WindError, WireError
from wind_actors.protocol import CONTROLLER_ACTOR, EnsureVMs, RemoveVMs, vm_actor_name
from wind_actors.services import DesiredVM, Store, parse_descriptor, reconcile

from ._lost import moved_from, stale_copies
from ._overlay import attach_nics, overlay_changed
from ._views import ALIVE, Snapshot, app_prefix, observed_for, vm_spec

__all__ = ["AppActor", "AppBusy", "Reconcile", "Reload", "StartUndeploy"]

_log = structlog.get_logger("wind.controller.app")

#: Seconds before an EnsureVMs for the same VM is sent again while it is not seen running.
RESEND_AFTER = 5.0
#: Seconds to wait for a site to remove an application's VMs.
REMOVE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Reconcile:
    """Told by the controller on every tick: the sites as they are now."""

    snapshot: Snapshot


@dataclass(frozen=True)
class Reload:
    """Told by the controller after it changed this application's records (VMs moved off a lost
    site): read them from the store again, then reconcile."""


@dataclass(frozen=True)
class AppBusy:
    """Told by an application actor to the controller (in-process) when it starts and whenever
    it gets work under way or finishes it: a busy one is reconciled on every tick, an idle one
    on changes and the safety pass only.

    Attributes:
        key: ``(tenant, app)``.
        busy: whether it has work under way (VMs not running yet, extras to remove, an undeploy).
        ref: the actor (a restarted one has a new ref).
    """

    key: tuple
    busy: bool
    ref: Any


@dataclass(frozen=True)
class StartUndeploy:
    """Told by the controller: remove every VM of this application, then forget it."""

    op: str


class AppActor(WatchedActor):
    """The actor of one application (a transient child of the controller's app supervisor).

    Args:
        node: the controller's node (for refs and monitors).
        store: the desired-state store.
        tenant: the owning tenant.
        app: the application name.
    """

    use_daemon_thread = True

    def __init__(self, node: Any, store: Store, tenant: str, app: str) -> None:
        super().__init__()
        self.node = node
        self.store = store
        self.tenant = tenant
        self.app = app
        self.prefix = app_prefix(tenant, app)
        self._monitors: dict[str, str] = {}   # vm name -> monitor id
        self._watched_at: dict[str, str] = {}  # vm name -> the site of the copy monitored
        self._sent: dict[str, float] = {}     # vm name -> when EnsureVMs was last sent
        self._undeploy_op: str | None = None
        self._snapshot = Snapshot()
        self._last_states: dict[str, str] = {}
        self._busy: bool | None = None
        #: Reconciliation passes run (tests and stats read it; an idle application runs none).
        self.passes = 0
        self._records: dict[str, Any] = {}   # vm name -> VMRecord, as stored
        self._placement: Any = None
        self._state = "deploying"
        self._deploy_op: Any = None          # the latest deploy operation, as stored

    # -- hooks ------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Load the application; one found ``undeploying`` resumes its undeploy on the first
        ``Reconcile`` (a controller killed mid-undeploy finishes it after its restart).

        Runs on this actor's thread; if it raises (the application is gone), the actor fails.
        """
        record = self._load()
        self.descriptor = parse_descriptor(record.descriptor, allow_unsupported=True)
        if record.state == "undeploying":
            self._undeploy_op = self._undeploy_to_resume()
        _log.info("app.started", tenant=self.tenant, app=self.app, state=record.state,
                  resumes_undeploy=self._undeploy_op)
        self._say_busy(True)  # reconciled on the next tick, whatever the sites say

    def _load(self) -> Any:
        """Read the application, its VM records and its latest deploy operation (once at start,
        and on :class:`Reload`); afterwards this actor writes through what it changes."""
        record = self.store.get_application(self.tenant, self.app)
        self._placement, self._state = record.placement, record.state
        self._records = {r.name: r for r in self.store.vms(self.tenant, self.app)}
        ops = [o for o in self.store.operations(self.tenant, self.app) if o.kind == "deploy"]
        self._deploy_op = ops[-1] if ops else None
        return record

    def _say_busy(self, busy: bool) -> None:
        if busy == self._busy:
            return
        self._busy = busy
        controller = self.node.whereis(CONTROLLER_ACTOR)
        if controller is not None:
            controller.tell(AppBusy((self.tenant, self.app), busy, self.actor_ref))

    def _undeploy_to_resume(self) -> str:
        """The operation of the undeploy under way: the latest running one, else the latest one,
        else a new one (an undeploying application must never go back to being reconciled)."""
        ops = [o for o in self.store.operations(self.tenant, self.app) if o.kind == "undeploy"]
        running = [o for o in ops if o.state == "running"]
        if running or ops:
            return (running or ops)[-1].id
        total = len(self.store.vms(self.tenant, self.app))
        return self.store.begin_operation(self.tenant, "undeploy", self.app,
                                          detail={"total": total, "removed": 0}).id

    def on_stop(self) -> None:
        for mid in self._monitors.values():
            self.node.demonitor(mid)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            self._snapshot = message.snapshot
            return self._undeploy() if self._undeploy_op else self._reconcile()
        if isinstance(message, Reload):
            self._load()
            return self._undeploy() if self._undeploy_op else self._reconcile()
        if isinstance(message, Down):
            return self._on_down(message)
        if isinstance(message, StartUndeploy):
            self._undeploy_op = message.op
            return self._undeploy()
        return None

    # -- running ------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        self.passes += 1
        snap = self._snapshot
        records = self._records
        desired = [DesiredVM(r.name, r.site, r.restart, "stopped" if r.desired == "stopped" else "running")
                   for r in records.values()]
        # Copies left on a site the VM was moved away from are removed, never adopted or watched.
        moved = moved_from(self._placement)
        placed = {n: r.site for n, r in records.items()}
        for name in [n for n in self._monitors if self._watched_at.get(n) in moved.get(n, ())
                     and self._watched_at.get(n) != placed.get(n)]:
            self.node.demonitor(self._monitors.pop(name))
        stale, observed = stale_copies(observed_for(snap, self.prefix), placed, moved)
        result = reconcile(desired, observed, sites_up=snap.sites_up, tracked=self._monitors.keys())
        now = time.monotonic()
        to_start: dict[str, list[dict[str, Any]]] = {}
        for action in result.start:
            if now - self._sent.get(action.name, -1e9) < RESEND_AFTER:
                continue
            self._sent[action.name] = now
            rec = records[action.name]
            to_start.setdefault(action.site, []).append(
                {"spec": vm_spec(self.descriptor, rec), "restart": rec.restart})
        attach_nics(to_start, self.store, self.tenant, self.app)  # MAC + overlay bridge per NIC
        for site, vms in to_start.items():
            self._tell_site(site, EnsureVMs(tuple(vms)))
        for action in result.adopt:
            self._adopt_vm(action.name, action.site)
        to_stop: dict[str, list[str]] = {}
        for action in result.stop:
            to_stop.setdefault(action.site, []).append(action.name)
        for vm in stale:
            to_stop.setdefault(vm.site, []).append(vm.name)
        for site, names in to_stop.items():
            _log.warning("app.removing_extra_vms", tenant=self.tenant, app=self.app, site=site, vms=names)
            self._tell_site(site, RemoveVMs(tuple(names)))
        complete = self._record_progress(records, snap)
        self._say_busy(bool(result.start or result.stop or stale) or not complete)

    def _adopt_vm(self, name: str, site: str | None) -> None:
        view = self._snapshot.sites.get(site) if site else None
        if view is None or name in self._monitors:
            return
        ref = self.node.ref(f"{vm_actor_name(name)}@{view.node}")
        self._monitors[name] = self.node.monitor(ref, self.actor_ref)
        self._watched_at[name] = site
        _log.debug("app.watching", vm=name, site=site)

    def _on_down(self, down: Down) -> None:
        name = next((n for n, mid in self._monitors.items() if mid == down.monitor_id), None)
        if name is None:
            return
        del self._monitors[name]  # re-adopted on a later tick once its VM actor is back
        _log.info("app.vm_actor_down", tenant=self.tenant, app=self.app, vm=name,
                  reason=str(down.reason))

    def _record_progress(self, records: dict[str, Any], snap: Snapshot) -> bool:
        """Write through the VMs' new states and the deploy's progress. Returns: whether every
        VM runs."""
        states: dict[str, str] = {}
        for name, rec in records.items():
            row = snap.vm(name, rec.site)
            states[name] = str(row.get("state")) if row else "pending"
        changed = [(n, {"state": s}) for n, s in states.items() if self._last_states.get(n) != s]
        if changed:
            self.store.update_vms(changed)
            self._last_states.update(states)
        running = sum(1 for s in states.values() if s in ALIVE)
        complete = running == len(records)
        op = self._deploy_op
        if op is not None and op.state == "running":
            detail = {"total": len(records), "running": running}
            if complete:
                # One transaction: the operation is done exactly when the application runs.
                self.store.finish_deploy(self.tenant, self.app, op.id, detail)
                self._deploy_op = dataclasses.replace(op, state="done", detail=detail)
                self._state = "running"
                _log.info("app.deployed", tenant=self.tenant, app=self.app, vms=running, op=op.id)
                return complete
            if op.detail != detail:
                self.store.update_operation(op.id, "running", detail)
                self._deploy_op = dataclasses.replace(op, detail=detail)
        if complete and self._state == "deploying":
            self.store.set_application_state(self.tenant, self.app, "running")
            self._state = "running"
        return complete

    # -- undeploying -----------------------------------------------------------------------------

    def _undeploy(self) -> None:
        op = self._undeploy_op
        assert op is not None
        snap = self._snapshot
        for mid in self._monitors.values():
            self.node.demonitor(mid)
        self._monitors.clear()
        records = list(self._records.values())
        by_site: dict[str, list[str]] = {}
        for obs in observed_for(snap, self.prefix):
            by_site.setdefault(obs.site, []).append(obs.name)
        for rec in records:
            # Also where each VM is placed, reported or not: an EnsureVMs sent before the
            # undeploy may still be creating it there (the site handles ours after it).
            if rec.site in snap.sites_up and rec.name not in by_site.get(rec.site, ()):
                by_site.setdefault(rec.site, []).append(rec.name)
        waiting = [r.site for r in records if r.site is not None and r.site not in snap.sites_up]
        failed = {}
        for site, names in by_site.items():
            # The snapshot can be older than the link; an ask over a link that is down or cut
            # fails at once with NodeDownError (the runtime's rule), and the next tick retries.
            try:
                for chunk in self._chunks(RemoveVMs(tuple(names))):
                    reply = snap.sites[site].agent.ask(chunk, timeout=REMOVE_TIMEOUT)
                    failed.update(reply.get("failed") or {})
            except WindError as exc:
                failed[site] = str(exc)
        total = len(records)
        if failed or waiting:
            self.store.update_operation(op, "running", {"total": total, "removed": total - len(failed),
                                                        "waiting_for_sites": sorted(set(waiting)),
                                                        "failed": failed})
            self._say_busy(True)
            return  # tried again on the next tick
        # One transaction: a crash leaves the application with its running operation (resumed
        # after the restart), never a deleted application whose operation runs forever.
        self.store.finish_undeploy(self.tenant, self.app, op, {"total": total, "removed": total})
        if self.descriptor.networks:  # its NICs leave their networks (no networks: no overlay work)
            overlay_changed(self.node, [(self.tenant, self.app)])
        _log.info("app.undeployed", tenant=self.tenant, app=self.app, vms=total, op=op)
        self.stop_with("normal")

    # -- plumbing ---------------------------------------------------------------------------------

    def _chunks(self, message: EnsureVMs | RemoveVMs) -> list[EnsureVMs | RemoveVMs]:
        """``message`` cut into requests under the frame limit (an application of thousands of
        VMs on one site would otherwise be refused whole)."""
        budget = budget_of(self.node.config.max_frame_bytes)
        if isinstance(message, EnsureVMs):
            return [EnsureVMs(tuple(c)) for c in chunks_by_size(message.vms, budget)]
        return [RemoveVMs(tuple(c)) for c in chunks_by_size(message.names, budget)]

    def _tell_site(self, site: str | None, message: EnsureVMs | RemoveVMs) -> None:
        view = self._snapshot.sites.get(site) if site else None
        if view is None:
            return
        for chunk in self._chunks(message):
            try:
                view.agent.tell(chunk)
            except WireError as exc:  # one VM's spec alone over the limit: say so, go on
                _log.warning("app.request_not_sendable", tenant=self.tenant, app=self.app, site=site,
                             kind=type(chunk).__name__, reason=exc.reason, error=str(exc),
                             fix=OVERSIZE_FIX)
            except WindError as exc:
                _log.warning("app.site_unreachable", site=site, error=str(exc))
                return
