"""ControllerActor: tenants, applications, the pool from site reports, and the scheduler.

Registered as ``controller`` on the controller node. It answers the client's requests (every one
carries a tenant token; another tenant's application is "not found", exactly as a missing one),
keeps every site's view from its delta reports, and hands a snapshot of the sites to the
application actors a change concerns: those whose VMs changed, every one when a site goes up or
down, the busy ones (work under way) on every tick, and every one on the slow safety pass
(``reconcile_interval``). An idle cloud costs it next to nothing per tick. Desired state lives in
the SQLite store, so a controller killed with SIGKILL and started again restores every
application (see ``AppActor``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from supervisors import WatchedActor, start_child
from wind_actors._chunks import budget_of, chunks_by_size
from wind_actors._paging import cap_in_place
from wind_actors.agent._overlay import OVERLAY_PLANNER
from wind_actors.errors import DescriptorInvalid, Forbidden, NotFound, WindError
from wind_actors.protocol import (Deploy, GetOperation, KillInstance, KillVM, RemoveSite, RemoveVMs,
                                  ReportAck, SiteReport, Sites, Status, Undeploy, error_reply)
from wind_actors.runtime import CLIENT, OPERATOR, identity_of
from wind_actors.services import (Scheduler, Store, Tenants, TenantView, VMRecord, parse_descriptor,
                                  vm_name)

from ._app import AppBusy, Reconcile, Reload, StartUndeploy
from ._lost import LostSites
from ._networks import network_problems
from ._overlay import SITES_KEY, RemoveSiteFromPlan, add_overlay_addresses, replan_now
from ._removed import RemovedSites, holders, refusal
from ._site_pages import sites_page
from ._sites import SiteBook
from ._status import status_page
from ._views import ALIVE, Snapshot, app_prefix, build_pool, slots_of

__all__ = ["ControllerActor"]

_log = structlog.get_logger("wind.controller")


#: The pseudo-tenant under which operators' operations (site removals) are recorded.
OPERATORS = "@operators"


@dataclass(frozen=True)
class _Tick:
    pass


class ControllerActor(WatchedActor):
    """The controller (see the module docstring).

    Args:
        node: the controller node.
        store: the desired-state store (outlives restarts of this actor).
        tenants: the configured tenants and their tokens.
        app_sup: the simple_one_for_one supervisor of the application actors.
        site_timeout: seconds without a report before a site is down.
        lost_site_grace: seconds a site stays down before its VMs move to other sites (0: never).
        removed: the removed sites, shared with the overlay planner (default: read from ``store``).
        reconcile_interval: seconds between safety passes over every application.
    """

    use_daemon_thread = True

    def __init__(self, node: Any, store: Store, tenants: Tenants, app_sup: Any, *,
                 site_timeout: float = 5.0, removed: RemovedSites | None = None,
                 lost_site_grace: float = 30.0, reconcile_interval: float = 30.0) -> None:
        super().__init__()
        self.node, self.store, self.tenants, self.app_sup = node, store, tenants, app_sup
        self.site_timeout = site_timeout
        self.removed = removed if removed is not None else RemovedSites(store)
        self.lost = LostSites(store, lost_site_grace, site_timeout)
        self.book = SiteBook(site_timeout)
        self.sites = self.book.sites  # the same dict: site -> SiteRecord
        self.apps: dict[tuple[str, str], pykka.ActorRef[Any]] = {}
        self.snapshot = Snapshot()
        self.reconcile_interval = reconcile_interval
        self._last_safety = time.monotonic()
        self._busy: set[tuple[str, str]] = set()      # apps with work under way: every tick
        self._last_up: frozenset[str] = frozenset()

    # -- hooks ------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Restore every stored application: one application actor each."""
        restored = 0
        for record in self.store.list_applications():
            self._app_actor(record.tenant, record.name)
            restored += 1
        _log.info("controller.started", node=self.node.name, applications=restored)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Tick):
            return self._tick()
        if isinstance(message, SiteReport):
            return self._on_site_message(message)
        if isinstance(message, AppBusy):
            return self._on_app_busy(message)
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return None
        try:
            return handler(self, message)
        except WindError as exc:
            return error_reply(exc)

    # -- sites ------------------------------------------------------------------------------------

    def _on_site_message(self, msg: SiteReport) -> None:
        """A report (part) from an agent (a tell: bad content is dropped, never a crash).

        The runtime already checked that an agent of that very site sent it; a report must also
        name the sender's own node as the site's agent, or an agent could point the controller
        at another node.
        """
        who = identity_of(self.sender)
        try:
            if not who.is_local and msg.agent.node_name != who.node:
                raise Forbidden(f"a report of site {msg.site!r} names agent node "
                                f"{msg.agent.node_name!r} but came from {who.node!r}; an agent may "
                                "only report itself", site=msg.site)
            return self._on_report(msg)
        except Exception as exc:  # noqa: BLE001 - a peer's bad report must not crash the controller
            self.node.refuse("bad_report", peer=who.node, site=getattr(msg, "site", None),
                             kind=type(msg).__name__, error=f"{type(exc).__name__}: {exc}")
            return None

    def _on_report(self, msg: SiteReport) -> None:
        """Merge one report part into the site's view (``SiteBook``) and acknowledge each whole
        report, so the agent sends only what changed after it."""
        if not self.removed.admits(msg.site, msg.agent.node_name, msg.started_at):
            return  # the removed incarnation of a site stays out (see remove_site)
        ack = self.book.take(msg)
        if ack is not None:
            try:
                msg.agent.tell(ReportAck(msg.site, ack.epoch, ack.seq, ack.resync))
            except WindError as exc:  # the agent's next report is answered instead
                _log.debug("controller.ack_not_sent", site=msg.site, error=str(exc))

    def _build_snapshot(self) -> Snapshot:
        self.snapshot = self.book.snapshot()
        return self.snapshot

    def _tick(self) -> None:
        snap = self._build_snapshot()
        everyone = False
        if self.lost.tick(snap):  # moves are stored before the apps reconcile against them
            replan_now(self.node, self.lost.moved_apps)
            for ref in self.apps.values():
                ref.tell(Reload())  # their records changed in the store
        up = snap.sites_up
        if up != self._last_up:  # a site came or went: placements there may need work
            self._last_up, everyone = up, True
        now = time.monotonic()
        safety = now - self._last_safety >= self.reconcile_interval
        if safety:
            self._last_safety, everyone = now, True
        wanted = self.apps.keys() if everyone else (self._busy | self.book.changed) & self.apps.keys()
        self.book.changed.clear()
        for key in list(wanted):
            ref = self.apps[key]
            if ref.is_alive():
                ref.tell(Reconcile(snap))
            else:
                del self.apps[key]
                self._busy.discard(key)
        if safety:
            self._sweep_orphans(snap)

    def site_rows(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Returns: a copy of every site's VM rows as this controller sees them (tests, debugging)."""
        return {name: {vm: dict(row) for vm, row in feed.vms.items()}
                for name, feed in self.book.feeds.items()}

    def busy_apps(self) -> frozenset[tuple[str, str]]:
        """Returns: the applications with work under way (reconciled on every tick)."""
        return frozenset(self._busy)

    def _on_app_busy(self, msg: AppBusy) -> None:
        """An application actor started (perhaps restarted: a new ref), or its work changed."""
        self.apps[msg.key] = msg.ref
        if msg.busy:
            self._busy.add(msg.key)
        else:
            self._busy.discard(msg.key)

    def _sweep_orphans(self, snap: Snapshot) -> None:
        wanted = {r.name for r in self.store.vms()}
        for name, view in snap.sites.items():
            if not view.up:
                continue
            extra = [vm for vm, row in view.vms.items() if row.get("managed") and vm not in wanted]
            if extra:
                _log.warning("controller.removing_orphans", site=name, vms=extra)
                budget = budget_of(self.node.config.max_frame_bytes)
                try:
                    for chunk in chunks_by_size(extra, budget):
                        view.agent.tell(RemoveVMs(tuple(chunk)))
                except WindError as exc:  # the next sweep tries again
                    _log.warning("controller.orphans_not_removed", site=name, error=str(exc))

    def _app_actor(self, tenant: str, app: str) -> pykka.ActorRef[Any]:
        ref = self.apps.get((tenant, app))
        if ref is None or not ref.is_alive():
            ref = start_child(self.app_sup, tenant, app)
            self.apps[(tenant, app)] = ref
            self.book.changed.add((tenant, app))  # reconciled on the next tick
        return ref

    # -- requests ---------------------------------------------------------------------------------

    def _view(self, token: str) -> TenantView:
        """The tenant a request acts for: its token's, which must be the client key's own tenant.

        Raises:
            Unauthenticated: the token is not a tenant's.
            Forbidden: a client of one tenant presented another tenant's token (a stolen token is
                of no use without that tenant's key), or an operator presented a token.
        """
        tenant = self.tenants.authenticate(token)
        who = identity_of(self.sender)
        if not who.is_local and not (who.role == CLIENT and who.scope == tenant):
            self.node.refuse("forbidden", peer=who.node, role=who.role,
                             detail="token of another tenant than the sender's key")
            raise Forbidden(f"this token is not valid from {who}: a client may only use its own "
                            "tenant's token", node=who.node)
        return TenantView(self.store, tenant)

    def _operator_or_view(self, token: str) -> TenantView:
        """Operators act on the pool without a tenant token; everyone else as :meth:`_view`."""
        if identity_of(self.sender).role == OPERATOR:
            return TenantView(self.store, OPERATORS)
        return self._view(token)

    def _op_by_key(self, tenant: str, key: str | None, kind: str) -> Any:
        """The tenant's ``kind`` operation with idempotency ``key``, or None (no key, or unused).

        Raises:
            WindError: the key belongs to an operation of another kind (reusing it would answer,
                or re-drive, the wrong operation).
        """
        if key is None:
            return None
        op = self.store.operation_by_key(tenant, key)
        if op is not None and op.kind != kind:
            raise WindError(f"operation key {key!r} was used for a {op.kind} operation ({op.id}), not "
                            f"a {kind}; use a new key", tenant=tenant, op=op.id)
        return op

    def deploy(self, msg: Deploy) -> dict[str, Any]:
        """Validate, place whole or not at all, store, and start the application's actor.

        A retry with the same ``op_key`` answers ``unchanged`` with the first attempt's operation,
        unless a crash left that operation without its application: then it is re-driven (placed
        and stored again under the same operation), so every retry converges.
        """
        view = self._view(msg.token)
        tenant = view.tenant
        prior = self._op_by_key(tenant, msg.op_key, "deploy")
        if prior is not None and not self._deploy_lost_its_app(tenant, prior):
            self._keep_driving(tenant, prior)
            return {"op": prior.id, "app": prior.app, "state": "unchanged", "placement": [], "vms": 0}
        app = view.check_descriptor(parse_descriptor(msg.descriptor))
        if prior is not None and prior.app != app.name:  # the key's operation was about another app
            return {"op": prior.id, "app": prior.app, "state": "unchanged", "placement": [], "vms": 0}
        raw = json.loads(json.dumps(dict(app.raw), default=str))
        try:
            existing = view.application(app.name)
        except NotFound:
            existing = None
        if existing is not None:
            if existing.state == "undeploying":
                raise WindError(f"application {app.name!r} is being undeployed; deploy it again once "
                                "that finishes", recoverable=True, tenant=tenant, app=app.name)
            if existing.descriptor != raw:
                raise WindError(f"application {app.name!r} is already deployed with another "
                                "descriptor; updating a deployed application is not supported yet: "
                                "undeploy it first", tenant=tenant, app=app.name)
            ops = [o for o in self.store.operations(tenant, app.name) if o.kind == "deploy"]
            slots = slots_of(existing.placement)
            return self._capped({"op": ops[-1].id if ops else None, "app": app.name, "state": "unchanged",
                                 "placement": [s.to_mapping() for s in slots], "vms": len(slots)},
                                "placement")
        stored = sorted(self.store.list_applications(tenant), key=lambda r: r.created)
        problems = network_problems(app, (parse_descriptor(r.descriptor, allow_unsupported=True) for r in stored),
                                    self.store.vms(tenant))
        if problems:  # before anything is placed or stored: nothing to undo
            raise DescriptorInvalid(problems, tenant=tenant, app=app.name)
        self._check_pool_known(tenant, app.name)
        snap = self._build_snapshot()
        pending = [(vm_name(r.tenant, r.name, s.instance), s)
                   for r in self.store.list_applications() for s in slots_of(r.placement)]
        placement = Scheduler(build_pool(snap, pending), seed=_seed(tenant, app.name)).place(app)
        slots = placement.by_instance()
        records = [VMRecord(vm_name(tenant, app.name, iid), tenant, app.name, iid, comp.name,
                            slots[iid].site, slots[iid].host, "pending", "running", comp.restart)
                   for iid, comp in app.instances()]
        # One transaction: a crash leaves the operation with its application, or neither.
        op = self.store.begin_deploy(tenant, app.name, raw, placement.to_mapping(), records, key=msg.op_key,
                                     detail={"total": len(records), "running": 0})
        if app.networks:  # the VMs' NICs get their MAC and bridge before the VMs start
            replan_now(self.node, [(tenant, app.name)])
        ref = self._app_actor(tenant, app.name)
        ref.tell(Reconcile(snap))
        by_site = {site: len(s) for site, s in placement.by_site().items()}
        _log.info("controller.deploying", tenant=tenant, app=app.name, vms=len(records),
                  sites=by_site, op=op.id)
        return self._capped({"op": op.id, "app": app.name, "state": "deploying",
                             "placement": [s.to_mapping() for s in placement.slots], "vms": len(records)},
                            "placement")

    def _keep_driving(self, tenant: str, op: Any) -> None:
        """Make sure a running deploy's application has its actor, which drives it to done."""
        if op.state != "running" or op.app is None:
            return
        try:
            self.store.get_application(tenant, op.app)
        except NotFound:
            return  # undeployed since: nothing to drive
        self._app_actor(tenant, op.app)

    def _deploy_lost_its_app(self, tenant: str, op: Any) -> bool:
        """Whether deploy ``op`` still runs without its application, and no undeploy of that
        application came after it: a crash between separate writes left it so (stores written
        before a deploy was one transaction), and a retry with its key must re-drive it."""
        if op.state != "running" or op.app is None:
            return False
        try:
            self.store.get_application(tenant, op.app)
            return False
        except NotFound:
            pass
        later = self.store.operations(tenant, op.app)
        return not any(o.kind == "undeploy" and o.created >= op.created for o in later)

    def _check_pool_known(self, tenant: str, app: str) -> None:
        """Refuse to place while the pool may be incomplete because this controller just started.

        Right after a (re)start no site has reported yet, and a placement would evaluate none of
        them. Until every site known from the store has reported since the start (or
        ``site_timeout`` has passed: a site silent that long is down anyway), the deploy is
        refused with a recoverable error that ``Client.deploy`` retries with the same key. The
        controller's thread is never held up waiting.

        Raises:
            WindError: recoverable, ``pool not known yet: N of M sites have reported since the
                controller started ...; retry``.
        """
        # LostSites is created with this actor and keeps when it started (monotonic seconds).
        waited = time.monotonic() - self.lost._started
        if waited >= self.site_timeout:
            return
        reported = set(self.sites)
        known = self._sites_in_store()
        if reported and known <= reported:
            return
        expected = known | reported
        missing = sorted(expected - reported)
        _log.info("controller.pool_not_known", tenant=tenant, app=app, reported=len(reported),
                  expected=len(expected), waiting_for=missing, since_start_s=round(waited, 2))
        heard = (f"{len(reported)} of {len(expected)} sites have reported" if expected
                 else "no site has reported")
        waiting = f" (waiting for {', '.join(missing)})" if missing else ""
        raise WindError(f"pool not known yet: {heard} since the controller started {waited:.1f} s ago"
                        f"{waiting}; retry", recoverable=True, tenant=tenant, app=app)

    def _sites_in_store(self) -> set[str]:
        """The sites the store knows (VMs placed there, or in the overlay), less removed ones."""
        sites = {r.site for r in self.store.vms() if r.site is not None}
        sites |= set(self.store.get_overlay(SITES_KEY, {}) or {})
        return {s for s in sites if self.removed.get(s) is None}

    def status(self, msg: Status) -> dict[str, Any]:
        """One page of the tenant's applications (or one), with every VM's site, host and
        state (see ``protocol.Status`` and ``_status``)."""
        view = self._view(msg.token)
        records = [view.application(msg.app)] if msg.app is not None else view.applications()
        snap = self._build_snapshot()  # answer with the latest reports, not the last tick's
        tenant = view.tenant

        def op_of(app: str) -> str | None:
            ops = self.store.operations(tenant, app)
            return ops[-1].id if ops else None

        def decorate(rows: list[dict], rec: Any) -> None:
            for row in rows:
                self.lost.annotate(row, rec, snap)  # why a VM is lost, where a moved one came from
            add_overlay_addresses(rows, self.store)

        return status_page(tenant, records, msg.cursor, msg.page_size,
                           vms=lambda app, **page: self.store.vms(tenant, app, **page),
                           op_of=op_of, snapshot=snap, decorate=decorate,
                           budget=budget_of(self.node.config.max_frame_bytes))

    def undeploy(self, msg: Undeploy) -> dict[str, Any]:
        """Remove every VM of an application, then forget it (idempotent).

        A retry with the same ``op_key`` answers with the first attempt's operation and drives on
        whatever a crash left undone (see :meth:`_resume_undeploy`).
        """
        view = self._view(msg.token)
        tenant = view.tenant
        prior = self._op_by_key(tenant, msg.op_key, "undeploy")
        if prior is not None:
            return self._resume_undeploy(tenant, prior)
        try:
            record = view.application(msg.app)
        except NotFound:
            done = [o for o in self.store.operations(tenant, msg.app)
                    if o.kind == "undeploy" and o.state == "done"]
            if done:
                return {"op": done[-1].id, "app": msg.app, "state": "undeployed"}
            raise
        if record.state == "undeploying":
            ops = [o for o in self.store.operations(tenant, msg.app) if o.kind == "undeploy"]
            self._app_actor(tenant, msg.app)  # a new application actor resumes the undeploy itself
            return {"op": ops[-1].id if ops else None, "app": msg.app, "state": "undeploying"}
        return self._start_undeploy(tenant, msg.app, msg.op_key)

    def _start_undeploy(self, tenant: str, app: str, key: str | None) -> dict[str, Any]:
        """Record the undeploy and hand it to the application's actor."""
        total = len(self.store.vms(tenant, app))
        # One transaction: a crash leaves the operation with the state change, or neither.
        op = self.store.begin_undeploy(tenant, app, key=key, detail={"total": total, "removed": 0})
        self._build_snapshot()
        ref = self._app_actor(tenant, app)
        ref.tell(Reconcile(self.snapshot))  # sets the snapshot the undeploy acts on
        ref.tell(StartUndeploy(op.id))
        _log.info("controller.undeploying", tenant=tenant, app=app, vms=total, op=op.id)
        return {"op": op.id, "app": app, "state": "undeploying"}

    def _resume_undeploy(self, tenant: str, op: Any) -> dict[str, Any]:
        """A retry of undeploy ``op``: say where it is, and finish what a crash left undone.

        Done: ``undeployed``. The application already deleted but the operation not marked done:
        mark it. The operation written but not the state change: start the undeploy under it.
        Undeploying: its application actor drives it (a restarted controller's new actor resumes
        it on start).
        """
        if op.state == "done":
            return {"op": op.id, "app": op.app, "state": "undeployed"}
        try:
            record = self.store.get_application(tenant, op.app)
        except NotFound:
            total = (op.detail or {}).get("total", 0)
            self.store.update_operation(op.id, "done", {"total": total, "removed": total})
            return {"op": op.id, "app": op.app, "state": "undeployed"}
        if record.state != "undeploying":
            return self._start_undeploy(tenant, op.app, op.key)
        self._app_actor(tenant, op.app)
        return {"op": op.id, "app": op.app, "state": "undeploying"}

    def operation(self, msg: GetOperation) -> dict[str, Any]:
        """An operation's state and progress (live for a running deploy)."""
        view = self._operator_or_view(msg.token)
        op = view.operation(msg.op)
        detail = dict(op.detail or {})
        state = op.state
        if op.kind == "deploy" and state == "running" and op.app is not None:
            prefix = app_prefix(view.tenant, op.app)
            running = sum(1 for s in self.snapshot.sites.values() if s.up
                          for n, row in s.vms.items() if n.startswith(prefix) and row.get("state") in ALIVE)
            live = {n: row for s in self.sites.values() for n, row in s.vms.items() if n.startswith(prefix)}
            running = max(running, sum(1 for row in live.values() if row.get("state") in ALIVE))
            detail["running"] = running
            detail["failed"] = sorted(n for n, row in live.items() if row.get("state") == "failed")
            if running >= detail.get("total", 0):
                state = "done"
        self._capped(detail, *[k for k, v in detail.items() if isinstance(v, (list, tuple, dict))])
        return {"op": op.id, "kind": op.kind, "app": op.app, "state": state, "detail": detail}

    def sites_table(self, msg: Sites) -> dict[str, Any]:
        """One page of the pool, one row per site in name order (``wind sites``; see
        ``protocol.Sites`` and ``_site_pages``). The pool is shared: no tenant filter applies."""
        self._operator_or_view(msg.token)
        snap = self._build_snapshot()
        pending = [(vm_name(r.tenant, r.name, s.instance), s)
                   for r in self.store.list_applications() for s in slots_of(r.placement)]
        return sites_page(snap, pending, msg.cursor, msg.page_size, now=time.monotonic(),
                          budget=budget_of(self.node.config.max_frame_bytes))

    def _capped(self, reply: dict[str, Any], *keys: str) -> dict[str, Any]:
        """``reply`` with the lists at ``keys`` cut to a quarter of a page's budget each: these
        one-off replies grow with an application or the pool, and one the frame limit refused
        would lose an answer whose work was done (see ``_paging.cap_in_place``)."""
        budget = budget_of(self.node.config.max_frame_bytes) // 4
        for key in keys:
            cap_in_place(reply, key, budget)
        return reply

    def remove_site(self, msg: RemoveSite) -> dict[str, Any]:
        """Remove a site from the pool and the overlay plan (see ``protocol.RemoveSite``).

        Raises:
            SiteInUse: applications have VMs placed there (nothing is changed).
            NotFound: no such site (neither reporting nor in the overlay, nor removed before).
        """
        who = identity_of(self.sender)
        if who.role != OPERATOR and not who.is_local:  # the runtime's rule refuses it first
            raise Forbidden(f"{who} may not remove sites: managing the shared pool is for operators "
                            "(nodes whose key is filed under keys_dir/operator/)")
        tenant = OPERATORS
        prior = self._op_by_key(tenant, msg.op_key, "remove_site")
        tomb = self.removed.get(msg.site)
        if prior is not None or tomb is not None:  # idempotent: it is gone already
            op = prior.id if prior is not None else (tomb["op"] if tomb["tenant"] == tenant else None)
            return {"op": op, "site": msg.site, "state": "removed", "agent": "unchanged", "sites_pushed": []}
        site = self.sites.get(msg.site)
        in_overlay = msg.site in (self.store.get_overlay(SITES_KEY, {}) or {})
        held = holders(msg.site, self.store.vms())
        if held:
            raise refusal(msg.site, None, held)
        if site is None and not in_overlay:
            raise NotFound(f"site {msg.site!r} not found: it is not in the pool (known: "
                           f"{', '.join(sorted(self.sites)) or 'none'})", tenant=tenant)
        op = self.store.begin_operation(tenant, "remove_site", None, key=msg.op_key, detail={"site": msg.site})
        self.removed.add(msg.site, node=site.node if site else None, started_at=site.started_at if site else None,
                         tenant=tenant, op=op.id)
        self.book.forget(msg.site)
        self._build_snapshot()
        planner = self.node.whereis(OVERLAY_PLANNER)
        result = None
        if planner is not None:  # it records the operation's outcome (and later the teardown's)
            try:
                result = planner.ask(RemoveSiteFromPlan(msg.site, op.id), timeout=30.0)
            except Exception as exc:  # noqa: BLE001 - the removal stands; the planner re-plans on its tick
                _log.warning("controller.remove_site_replan_failed", site=msg.site, error=str(exc))
        if result is None:
            result = {"agent": "unreachable", "sites_pushed": []}
            self.store.update_operation(op.id, "done", {"site": msg.site, "agent": "unreachable",
                                                        "teardown": "when the agent rejoins"})
        _log.info("controller.site_removed", site=msg.site, op=op.id, **result)
        return self._capped({"op": op.id, "site": msg.site, "state": "removed", **result}, "sites_pushed")

    def kill_instance(self, msg: KillInstance) -> dict[str, Any]:
        """Fault injection: kill one instance through its site's hypervisor."""
        view = self._view(msg.token)
        record = next((r for r in view.vms(msg.app) if r.instance == msg.instance), None)
        if record is None:
            raise NotFound(f"instance {msg.instance!r} of application {msg.app!r} not found",
                           tenant=view.tenant)
        site = self.sites.get(record.site or "")
        if site is None:
            raise WindError(f"site {record.site!r} of {record.name} has not reported", recoverable=True)
        return site.agent.ask(KillVM(record.name), timeout=30.0)


def _seed(tenant: str, app: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{tenant}/{app}".encode()).digest()[:4], "big")


_HANDLERS = {
    Deploy: ControllerActor.deploy,
    Status: ControllerActor.status,
    Undeploy: ControllerActor.undeploy,
    GetOperation: ControllerActor.operation,
    Sites: ControllerActor.sites_table,
    RemoveSite: ControllerActor.remove_site,
    KillInstance: ControllerActor.kill_instance,
}
