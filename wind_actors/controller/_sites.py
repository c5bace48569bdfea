"""SiteBook: the controller's view of every site, merged from their delta reports (controller
thread only; no sockets, so tests drive it directly).

Each site has a ``ReportReceiver`` (``wind_actors._reports``) holding its VM rows at some sequence
number, and a record with its agent, capacity report and liveness. The book remembers which
applications a report concerned (their VMs changed) until the controller's next tick, and
copies a site's rows into a snapshot only when they changed.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from wind_actors._reports import Ack, ReportPart, ReportReceiver
from wind_actors.services import SiteReport as PoolReport

from ._views import ALIVE, SiteView, Snapshot

__all__ = ["SiteBook", "SiteRecord"]

_log = structlog.get_logger("wind.controller")


class SiteRecord:
    """Mutable record of one site (controller thread only)."""

    __slots__ = ("name", "node", "agent", "report", "vms", "last_seen", "started_at", "reported",
                 "version")

    def __init__(self, name: str, node: str, agent: Any, report: PoolReport, started_at: float) -> None:
        self.name, self.node, self.agent, self.report = name, node, agent, report
        self.vms: dict[str, dict[str, Any]] = {}
        self.reported: frozenset[str] = frozenset()  # VMs the capacity report already counts
        self.last_seen = time.monotonic()
        self.started_at = started_at
        self.version = 0  # bumped whenever vms change (snapshots copy them only then)


class SiteBook:
    """Every site's view and record.

    Args:
        site_timeout: seconds without a report before a site is down.
    """

    def __init__(self, site_timeout: float) -> None:
        self.site_timeout = site_timeout
        self.sites: dict[str, SiteRecord] = {}
        self.feeds: dict[str, ReportReceiver] = {}
        #: ``(tenant, app)`` of the applications whose VMs changed since the controller last looked.
        self.changed: set[tuple[str, str]] = set()
        self._copies: dict[str, tuple[SiteRecord, int, dict]] = {}

    def take(self, msg: Any) -> Ack | None:
        """Merge one ``protocol.SiteReport`` part. Returns: the acknowledgement to send, if any.

        Raises:
            ValueError, KeyError, TypeError: a malformed part (nothing was merged).
        """
        # Checked before anything is merged: a bad part must leave the view as it was.
        report = PoolReport.from_mapping(msg.report) if msg.report is not None else None
        if not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in msg.vms) \
                or not all(isinstance(n, str) for n in msg.removed):
            raise ValueError("every VM row needs a str name, every removed entry must be a name")
        feed = self.feeds.setdefault(msg.site, ReportReceiver())
        got = feed.receive(ReportPart(msg.epoch, msg.base, msg.seq, msg.part, msg.parts, msg.vms,
                                      msg.removed, msg.report))
        site = self.sites.get(msg.site)
        node = msg.agent.node_name
        if got.applied and feed.report is not None:
            fresh = site is None or site.node != node or site.started_at != msg.started_at
            if fresh:
                report = report or PoolReport.from_mapping(feed.report)
                if site is None:
                    _log.info("controller.site_joined", site=msg.site, node=node,
                              hosts=len(report.hosts), driver=report.driver)
                site = self.sites[msg.site] = SiteRecord(msg.site, node, msg.agent, report, msg.started_at)
            if fresh or got.report_changed:
                site.report = report or PoolReport.from_mapping(feed.report)
                site.reported = frozenset(n for n, row in feed.vms.items() if row.get("state") in ALIVE)
            site.vms = feed.vms  # the feed's own dict, kept current; snapshots copy it
            if got.changed or got.resynced:
                site.version += 1
                for name in got.changed:  # tenant.app.instance: that application must look
                    parts = name.split(".", 2)
                    if len(parts) == 3:
                        self.changed.add((parts[0], parts[1]))
        if site is not None and got.ack is not None and not got.ack.resync \
                and got.ack.epoch == feed.epoch and site.node == node:
            site.last_seen = time.monotonic()  # a keepalive, or a report of the current view
        return got.ack

    def forget(self, site: str) -> None:
        """Drop a site (removed from the pool)."""
        self.sites.pop(site, None)
        self.feeds.pop(site, None)

    def snapshot(self) -> Snapshot:
        """Returns: every site as it is now (rows copied only for sites whose VMs changed)."""
        now = time.monotonic()
        views = {}
        for name, s in self.sites.items():
            up = now - s.last_seen <= self.site_timeout and s.report.health == "up"
            copy = self._copies.get(name)
            if copy is None or copy[0] is not s or copy[1] != s.version:
                # Application actors read the snapshot on their threads: they get a copy.
                copy = self._copies[name] = (s, s.version, dict(s.vms))
            views[name] = SiteView(name, s.node, s.agent, s.report, copy[2], up, s.last_seen,
                                   s.reported)
        for name in [n for n in self._copies if n not in self.sites]:
            del self._copies[name]
        return Snapshot(views)
