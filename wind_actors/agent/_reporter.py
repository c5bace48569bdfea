"""Reporter: the site actor's delta reports to the controller (site actor thread only).

It wraps the pure ``ReportSender`` (``wind_actors._reports``) with the sending: quick deltas while
VMs change, a slow report every ``report_interval`` (keepalive + whatever is unacknowledged), and a
resync when the controller asks for one or has acknowledged nothing yet.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import structlog

from wind_actors._reports import Ack, ReportPart, ReportSender, new_epoch
from wind_actors.errors import WindError, WireError
from wind_actors.protocol import ReportAck, SiteReport

__all__ = ["Reporter"]

_log = structlog.get_logger("wind.agent.site")

#: Quick ticks between two resyncs at most (a burst of resync requests costs one resync).
RESYNC_EVERY_TICKS = 5


class Reporter:
    """The reports of one site actor incarnation (a new epoch each time).

    Args:
        site: the site name.
        tell: sends one message to the controller (raises ``WindError`` as ``RemoteRef.tell``).
        me: the site actor's remote ref (carried by every report).
        started_at: when the agent process started.
        max_frame_bytes: the node's frame limit; parts carry at most half of it in rows.
    """

    def __init__(self, site: str, tell: Callable[[Any], None], me: Any, started_at: float,
                 max_frame_bytes: int) -> None:
        self.site = site
        self._tell = tell
        self._me = me
        self._started_at = started_at
        self.sender = ReportSender(new_epoch(), budget=max(4096, max_frame_bytes // 2))
        self._ticks_since_resync = RESYNC_EVERY_TICKS

    # -- the truth ------------------------------------------------------------------------------

    def vm_changed(self, row: Mapping[str, Any]) -> None:
        """A VM actor's news (``state`` ``removed`` forgets the VM)."""
        self.sender.merge(row)

    def vm_removed(self, name: str) -> None:
        """A VM the site actor removed."""
        self.sender.remove(name)

    def inventory(self, rows: Iterable[Mapping[str, Any]], report: Mapping[str, Any]) -> None:
        """A fresh inventory and capacity report from the driver."""
        self.sender.replace_all(rows)
        self.sender.set_report(report)

    def capacity(self, report: Mapping[str, Any]) -> None:
        """A fresh capacity report (between two full inventories)."""
        self.sender.set_report(report)

    # -- sending --------------------------------------------------------------------------------

    def quick(self) -> None:
        """Every quick tick: the changes since the last report, or a resync if one is due."""
        self._ticks_since_resync += 1
        s = self.sender
        if s.resync_wanted or s.acked is None:
            if self._ticks_since_resync >= RESYNC_EVERY_TICKS:
                self._ticks_since_resync = 0
                self._send(s.resync())
            return
        self._send(s.delta(since_ack=False))

    def slow(self) -> None:
        """Every ``report_interval``: the keepalive, carrying all that is unacknowledged."""
        s = self.sender
        if s.resync_wanted or s.acked is None:
            self._ticks_since_resync = 0
            self._send(s.resync())
        else:
            self._send(s.delta(since_ack=True))

    def on_ack(self, ack: ReportAck) -> None:
        """The controller's acknowledgement (or resync request)."""
        self.sender.on_ack(Ack(ack.epoch, ack.seq, ack.resync))

    def _send(self, parts: list[ReportPart]) -> None:
        for p in parts:
            msg = SiteReport(self.site, self._me, self._started_at, p.epoch, p.base, p.seq, p.part,
                             p.parts, p.vms, p.removed, p.report)
            try:
                self._tell(msg)
            except WireError as exc:  # never silent: the report would be lost for good
                _log.warning("site.report_not_sendable", site=self.site, seq=p.seq, part=p.part,
                             reason=exc.reason, error=str(exc), fix="a single VM row is larger "
                             "than the frame limit: shorten its detail or raise [node] "
                             "max_frame_bytes on the agent and the controller")
                return
            except WindError as exc:  # controller unknown or down: the slow report tries again
                _log.debug("site.report_not_sent", site=self.site, error=str(exc))
                return
