"""The wire messages between clients, the controller and the site agents.

Each carries its layout version (``@message(..., version=N)``); a node refuses another version,
so a version goes up when fields are added. New fields come last with defaults (``Status``,
``Sites`` and ``ListVMs`` gained ``cursor`` and ``page_size`` so), so code that builds the
older form still builds the new one. Replies that grow with the cloud are paged (see
``wind_actors._paging``).

Only plain data crosses the wire: every field below is a str, number, bool, None, a tuple of
those, a dict of those, or a ref. Replies to asks are plain dicts; a refused request is answered
with :func:`error_reply` (``{"error": {"type", "message", ...}}``) rather than an exception, so
structured detail (descriptor problems, placement explanations) reaches the client intact.

Who sends what (each class's ``@allow`` is its permission rule; the runtime refuses, counts and
logs any other sender before the message reaches an actor)::

    client of T ──Deploy/Status/Undeploy/Sites/GetOperation/KillInstance──▶ controller   (ask)
    operator    ──RemoveSite/Sites/GetOperation──▶ controller                          (ask)
    agent of S  ──SiteReport (naming site S only)──▶ controller                         (tell)
    controller  ──EnsureVMs/RemoveVMs/ListVMs/KillVM──▶ site.S@agent                   (ask)
    controller  ──ReportAck──▶ site.S@agent                                            (tell)

A client's token must also be its own tenant's: the controller refuses a token of another tenant
from a client key (a stolen token is useless without that tenant's key).

(The overlay's own messages, planner <-> agent, live in ``wind_actors.agent._overlay``.)

Actor names: the controller registers ``controller``; each agent registers ``site.SITE`` and one
``vm.VMNAME`` per VM actor, so ``vm.acme.web.db-0@agent@dc-1`` reaches the VM actor of that VM
(the application actors watch them with remote monitors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wind_actors.runtime import AGENT, CLIENT, CONTROLLER, OPERATOR, RemoteRef, allow, message

__all__ = [
    "CONTROLLER_ACTOR", "site_actor_name", "vm_actor_name",
    "SiteReport", "ReportAck", "EnsureVMs", "RemoveVMs", "ListVMs", "KillVM",
    "Deploy", "Status", "Undeploy", "Sites", "RemoveSite", "GetOperation", "KillInstance",
    "error_reply", "is_error",
]

CONTROLLER_ACTOR = "controller"
"""The name the controller actor is registered under on the controller node."""


def site_actor_name(site: str) -> str:
    """Returns: the registered name of a site's actor on its agent node (``site.SITE``)."""
    return f"site.{site}"


def vm_actor_name(vm: str) -> str:
    """Returns: the registered name of a VM's actor on its agent node (``vm.VMNAME``)."""
    return f"vm.{vm}"


# -- agent -> controller ------------------------------------------------------------------------


@allow(AGENT, scope_field="site")
@message("wind.agent.site_report", version=2)
@dataclass(frozen=True)
class SiteReport:
    """One part of a site's report: what changed since ``base``, or (``base`` None) a resync of
    the whole inventory. See ``wind_actors._reports`` for the sequence numbers and the resync.

    Told every ~0.1 s while VMs change, and every ``report_interval`` as a keepalive that also
    repeats whatever the controller has not acknowledged (:class:`ReportAck`). A report too big
    for one frame is cut into ``parts``; the controller applies it once it holds all of them.

    Attributes:
        site: the site name.
        agent: a ref to the site actor (the controller asks it to place and remove VMs).
        started_at: when this agent process started (wall clock), to tell restarts apart.
        epoch: the site actor incarnation's id; a report of an epoch the controller has no
            view of is answered with a resync request.
        base: the sequence number the controller's view must be at (or after); None: a resync.
        seq: the sequence number of the view once this report is applied.
        part: this part's index (from 0) of ``parts``.
        parts: how many parts this report has.
        vms: VM rows touched since ``base``: ``name, state, host, id, managed, restarts, detail``.
        removed: names of VMs gone since ``base``.
        report: ``services.SiteReport.to_mapping()`` (hosts, region, labels, health, driver,
            ``rtt_ms`` keyed by *node* name) when it changed since ``base``; else None.
    """

    site: str
    agent: RemoteRef
    started_at: float
    epoch: str
    base: int | None
    seq: int
    part: int
    parts: int
    vms: tuple
    removed: tuple
    report: dict | None


# -- controller -> agent ------------------------------------------------------------------------


@allow(CONTROLLER)
@message("wind.agent.report_ack", version=1)
@dataclass(frozen=True)
class ReportAck:
    """Told by the controller for each whole :class:`SiteReport` it took: where its view is.

    Attributes:
        site: the site the view is of.
        epoch: the site actor incarnation the view follows.
        seq: the sequence number the view is at (None when it has no view of that epoch).
        resync: the controller has no view of that epoch: send the whole inventory.
    """

    site: str
    epoch: str
    seq: int | None
    resync: bool = False


@allow(CONTROLLER)
@message("wind.agent.ensure_vms", version=1)
@dataclass(frozen=True)
class EnsureVMs:
    """Make sure each VM has a VM actor keeping it running (idempotent).

    Attributes:
        vms: one dict per VM: ``spec`` (``drivers.VMSpec.as_dict()``) and ``restart``
            (``always`` | ``on-failure`` | ``never``).

    Reply: ``{"started": [names], "present": [names], "failed": {name: message}}``.
    """

    vms: tuple


@allow(CONTROLLER)
@message("wind.agent.remove_vms", version=1)
@dataclass(frozen=True)
class RemoveVMs:
    """Stop each VM's actor, then destroy and undefine the VM (idempotent; absent is fine).

    Reply: ``{"removed": [names], "absent": [names], "failed": {name: message}}``.
    """

    names: tuple


@allow(CONTROLLER)
@message("wind.agent.list_vms", version=2)
@dataclass(frozen=True)
class ListVMs:
    """One page of the site's inventory, straight from the hypervisor, in VM name order.

    Paged as :class:`Sites` is (``wind_actors._paging``): ask again with the reply's ``next``
    as ``cursor`` until it is None (``wind_actors._paging.join_pages`` does). ``managed_only``
    filters before paging.

    Attributes:
        managed_only: only Wind's VMs (those carrying its metadata).
        cursor: the previous reply's ``next`` (None: the first page).
        page_size: VMs per page; 0 for the agent's default (1,000; at most 5,000).

    Reply: ``{"site", "vms": [{"name", "state", "host", "id", "managed", "restarts",
    "detail"}], "next", "total"}`` (``total``: VMs in the whole listing now).
    """

    managed_only: bool = True
    cursor: str | None = None
    page_size: int = 0


@allow(CONTROLLER)
@message("wind.agent.kill_vm", version=1)
@dataclass(frozen=True)
class KillVM:
    """Fault injection: kill a VM *through the hypervisor*, behind its VM actor's back
    (the sim's crash injection on sim sites, a driver ``destroy`` elsewhere).

    Reply: ``{"killed": name, "how": "sim crash" | "destroy"}``.
    """

    name: str


# -- client -> controller -----------------------------------------------------------------------


@allow(CLIENT)
@message("wind.ctl.deploy", version=1)
@dataclass(frozen=True)
class Deploy:
    """Deploy an application (idempotent).

    Attributes:
        token: the tenant token (never logged).
        descriptor: the YAML text of the descriptor.
        op_key: an idempotency key; the same key returns the same operation.

    Reply: ``{"op", "app", "state", "placement": [slot dicts], "vms"}``; ``state`` is
    ``deploying``, or ``unchanged`` when the same descriptor is already deployed. ``placement``
    lists as many of the ``vms`` slots as fit in a fraction of the frame limit; when it lists
    fewer, ``placement_total`` says how many there are (``Status`` pages through all of them).
    """

    token: str = field(repr=False)
    descriptor: str
    op_key: str | None = None


@allow(CLIENT)
@message("wind.ctl.status", version=2)
@dataclass(frozen=True)
class Status:
    """One page of the status of one application (``app``) or of all the tenant's (None).

    A page holds at most ``page_size`` VMs (and stays well under the frame limit); ask again
    with the reply's ``next`` as ``cursor`` until it is None (``Client.status`` does). An
    application longer than a page continues on the next ones: its later rows carry
    ``"continued": true`` and only its first row's ``running``/``total`` count all its VMs.

    Attributes:
        token: the tenant token (never logged).
        app: one application, or None for all of the tenant's.
        cursor: the previous reply's ``next`` (None: the first page).
        page_size: VMs per page; 0 for the controller's default (1,000; at most 5,000).

    Reply: ``{"apps": [{"app", "state", "op", "vms": [{"name", "instance", "component",
    "site", "host", "state", "restarts", "detail"}], "running", "total"}], "next"}``.
    """

    token: str = field(repr=False)
    app: str | None = None
    cursor: str | None = None
    page_size: int = 0


@allow(CLIENT)
@message("wind.ctl.undeploy", version=1)
@dataclass(frozen=True)
class Undeploy:
    """Undeploy an application (idempotent: an app this tenant already undeployed is fine).

    Reply: ``{"op", "app", "state"}``; ``state`` is ``undeploying`` or ``undeployed``.
    """

    token: str = field(repr=False)
    app: str
    op_key: str | None = None


@allow(CLIENT, OPERATOR)
@message("wind.ctl.sites", version=2)
@dataclass(frozen=True)
class Sites:
    """One page of the pool, one row per site in site name order.

    The pool is shared: every tenant (and operator) sees every site. A page holds at most
    ``page_size`` sites (and stays well under the frame limit); ask again with the reply's
    ``next`` as ``cursor`` until it is None (``Client.sites`` does). A site that joins or
    leaves between two pages is in the later pages or not, and no site comes twice.

    Attributes:
        token: the tenant token (never logged; empty from an operator's node).
        cursor: the previous reply's ``next`` (None: the first page).
        page_size: sites per page; 0 for the controller's default (200; at most 1,000).

    Reply: ``{"sites": [row dicts (see ``Pool.table``) plus "agent", "last_report_s",
    "rtt_ms"], "next", "total"}`` (``total``: sites in the pool now).
    """

    token: str = field(repr=False)
    cursor: str | None = None
    page_size: int = 0


@allow(OPERATOR)
@message("wind.ctl.remove_site", version=1)
@dataclass(frozen=True)
class RemoveSite:
    """Remove a site from the pool and the overlay (``wind sites remove NAME``; idempotent).

    Refused (``SiteInUse``, nothing changed) while any application has VMs placed there.
    Otherwise the site leaves the pool and the overlay plan, its agent (if reachable) is pushed
    an empty overlay state (it tears down every Wind device), and the other sites lose their
    entries towards it. The removal persists; that agent incarnation's reports are ignored, and
    an agent of that name that starts again later rejoins as a new site.

    Attributes:
        token: the tenant token (never logged).
        site: the site to remove.
        op_key: an idempotency key; the same key returns the same operation.

    Reply: ``{"op", "site", "state": "removed", "agent": "notified" | "unreachable",
    "sites_pushed": [site]}`` (``sites_pushed`` cut as ``GetOperation``'s lists are, with
    ``sites_pushed_total``, in a pool too large for a fraction of the frame limit).
    """

    token: str = field(repr=False)
    site: str
    op_key: str | None = None


@allow(CLIENT, OPERATOR)
@message("wind.ctl.operation", version=1)
@dataclass(frozen=True)
class GetOperation:
    """An operation's progress. Reply: ``{"op", "kind", "app", "state", "detail"}``;
    ``state`` is ``running``, ``done`` or ``failed``; ``detail`` has ``total``/``running``.
    A list in ``detail`` (``failed`` VMs, ``waiting_for_sites``) too long for a fraction of the
    frame limit is cut to its first entries, and ``detail[KEY + "_total"]`` counts them all."""

    token: str = field(repr=False)
    op: str


@allow(CLIENT)
@message("wind.ctl.kill_instance", version=1)
@dataclass(frozen=True)
class KillInstance:
    """Fault injection: kill one instance of an application through its site's hypervisor.

    Reply: ``{"killed": vm name, "site", "how"}``.
    """

    token: str = field(repr=False)
    app: str
    instance: str


# -- replies ------------------------------------------------------------------------------------


def error_reply(exc: BaseException) -> dict[str, Any]:
    """Turn an error into a reply the client turns back into the same error class.

    Returns:
        ``{"error": {"type", "message", "problems"?, "explanation"?, "features"?}}``.
    """
    body: dict[str, Any] = {"type": type(exc).__name__,
                            "message": getattr(exc, "message", None) or str(exc)}
    problems = getattr(exc, "problems", None)
    if problems is not None:
        body["problems"] = [{"path": p.path, "found": p.found, "allowed": p.allowed} for p in problems]
    explanation = getattr(exc, "explanation", None)
    if explanation is not None and hasattr(explanation, "to_mapping"):
        body["explanation"] = explanation.to_mapping()
        body["message"] = str(explanation)
    features = getattr(exc, "features", None)
    if features is not None:
        body["features"] = list(features)
    if getattr(exc, "recoverable", None) is not None:
        body["recoverable"] = bool(exc.recoverable)  # type: ignore[attr-defined]
    return {"error": body}


def is_error(reply: Any) -> bool:
    """Returns: whether ``reply`` is an :func:`error_reply`."""
    return isinstance(reply, dict) and "error" in reply and isinstance(reply["error"], dict)
