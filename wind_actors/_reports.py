"""Delta site reports: what an agent tells the controller, and how the controller merges it (pure).

No threads, sockets or clocks here, so Hypothesis drives both ends through loss, duplication,
reordering and restarts (``property_tests/test_report_deltas.py``).

The agent's :class:`ReportSender` holds the site's truth (VM rows by name, the capacity report)
and numbers its changes: ``seq`` grows by one for each report that carries something new. The
controller's :class:`ReportReceiver` holds one site's view at some ``seq`` of one sender
``epoch`` (a random id per site actor incarnation) and acknowledges the ``seq`` it is at.

A delta report carries ``base`` and ``seq`` and *every* VM touched after ``base`` (its current row,
or its name in ``removed``), so it turns the view at any ``seq`` in ``[base, seq)`` into the truth
at ``seq``. The receiver applies it only from such a state; an older or repeated one is
acknowledged and ignored, and one from beyond a gap is acknowledged with the receiver's ``seq``,
which the sender's next report "since the last acknowledged" covers. Quick reports (VM state
changes, every ~0.1 s) use ``base`` = the last sent ``seq``; the slow one (every report interval)
uses the last acknowledged ``seq``, so a lost report or a lost acknowledgement heals by itself.

A receiver with no view of that epoch (the controller restarted, or the agent did) answers with
``resync``; the sender then sends its whole truth as a *resync* (``base`` None), which replaces
the view. Epochs sort by their incarnation's start time, so a late resync of a dead incarnation
does not replace its successor's view (unless it keeps coming: a clock that went back). Every report, delta or resync, is cut into parts under a byte budget (below the frame
limit); a receiver applies a report only once it holds all its parts, so no view is ever half a
report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import time
import uuid

import msgpack

__all__ = ["ReportPart", "Ack", "Received", "ReportSender", "ReportReceiver", "same_report",
           "split_parts", "new_epoch", "DEFAULT_BUDGET"]

#: Bytes of VM rows per part when the sender is given no budget (half the default frame limit).
DEFAULT_BUDGET = 512 * 1024

#: Per-row allowance for msgpack framing around each row in a part.
_ROW_OVERHEAD = 8

#: Whole resyncs of an *older* epoch that replace the view anyway (a restarted agent whose clock
#: went back must not be locked out; a dead incarnation's stragglers are fewer than this).
_OLDER_EPOCH_RESYNCS = 3


@dataclass(frozen=True)
class ReportPart:
    """One part of a report (the payload of ``protocol.SiteReport``).

    Attributes:
        epoch: the sender incarnation's id.
        base: the ``seq`` the view must be at (or after) to apply it; None for a resync.
        seq: the ``seq`` the view is at once the report is applied.
        part: this part's index, from 0.
        parts: how many parts the report has.
        vms: VM rows (each a dict with at least ``name``).
        removed: names of VMs gone since ``base``.
        report: the capacity report mapping, when it changed since ``base`` (first part only).
    """

    epoch: str
    base: int | None
    seq: int
    part: int
    parts: int
    vms: tuple = ()
    removed: tuple = ()
    report: dict | None = None


@dataclass(frozen=True)
class Ack:
    """The receiver's answer: where its view of ``epoch`` is, or that it needs a resync."""

    epoch: str
    seq: int | None
    resync: bool = False


@dataclass(frozen=True)
class Received:
    """What :meth:`ReportReceiver.receive` did.

    Attributes:
        ack: what to answer (None while a report's parts are still arriving).
        applied: whether the view changed ``seq`` (a report was applied).
        changed: names of VMs whose row changed, appeared or went.
        report_changed: whether the capacity report was replaced.
        resynced: whether the view was replaced by a resync.
    """

    ack: Ack | None
    applied: bool = False
    changed: frozenset[str] = frozenset()
    report_changed: bool = False
    resynced: bool = False


def same_report(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a capacity report need not be sent again: equal but for its timestamp and for
    round-trip times within 20 % (+0.5 ms) of the last sent (they jitter on every probe)."""
    if old is None:
        return False
    skip = ("reported_at", "rtt_ms")
    if any(old.get(k) != v for k, v in new.items() if k not in skip) or set(old) != set(new):
        return False
    a, b = old.get("rtt_ms") or {}, new.get("rtt_ms") or {}
    if set(a) != set(b):
        return False
    return all(abs(b[k] - a[k]) <= 0.5 + 0.2 * abs(a[k]) for k in a)


def _size(value: Any) -> int:
    return len(msgpack.packb(value, use_bin_type=True)) + _ROW_OVERHEAD


def split_parts(epoch: str, base: int | None, seq: int, vms: list[dict], removed: list[str],
                report: dict | None, budget: int) -> list[ReportPart]:
    """Cut one report into parts of at most ``budget`` bytes of rows each (at least one part).

    A single row larger than the budget still travels, alone in its part; the frame limit is
    then the sender's error to report.
    """
    chunks: list[tuple[list[dict], list[str]]] = [([], [])]
    used = _size(report) if report is not None else 0
    for row in vms:
        size = _size(row)
        if used + size > budget and (chunks[-1][0] or chunks[-1][1]):
            chunks.append(([], []))
            used = 0
        chunks[-1][0].append(row)
        used += size
    for name in removed:
        size = len(name) + _ROW_OVERHEAD
        if used + size > budget and (chunks[-1][0] or chunks[-1][1]):
            chunks.append(([], []))
            used = 0
        chunks[-1][1].append(name)
        used += size
    n = len(chunks)
    return [ReportPart(epoch, base, seq, i, n, tuple(rows), tuple(gone), report if i == 0 else None)
            for i, (rows, gone) in enumerate(chunks)]


def new_epoch() -> str:
    """Returns: a new epoch id: the wall-clock start in ns, zero-padded so ids sort by it, plus
    random bits so two incarnations never share one."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


class ReportSender:
    """The agent's side: the site's truth, its change numbering, and the reports to send.

    Args:
        epoch: this incarnation's id, new after every restart, sorting after its predecessors'
            (see :func:`new_epoch`).
        budget: bytes of rows per part.
    """

    def __init__(self, epoch: str, budget: int = DEFAULT_BUDGET) -> None:
        self.epoch = epoch
        self.budget = budget
        self.seq = 0                    # the latest seq given out
        self.sent = 0                   # the seq of the latest report sent
        self.acked: int | None = None   # the latest seq the receiver acknowledged
        self.resync_wanted = True       # nothing acknowledged yet: the first report is a resync
        self.vms: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] | None = None
        self._touched: dict[str, int] = {}  # name -> the seq of the report carrying its last change
        self._report_touched = 0

    # -- changes --------------------------------------------------------------------------------

    def put(self, row: Mapping[str, Any]) -> None:
        """Set one VM's whole row (a change only if it differs)."""
        name = row["name"]
        if self.vms.get(name) != row:
            self.vms[name] = dict(row)
            self._touched[name] = self.seq + 1

    def merge(self, row: Mapping[str, Any]) -> None:
        """Update some fields of a VM's row (a None ``host`` keeps the known one); a row whose
        ``state`` is ``removed`` removes the VM."""
        if row.get("state") == "removed":
            self.remove(row["name"])
            return
        merged = dict(self.vms.get(row["name"], {"managed": True}))
        merged.update({k: v for k, v in row.items() if v is not None or k != "host"})
        self.put(merged)

    def remove(self, name: str) -> None:
        """Forget a VM (a change only if it was known)."""
        if self.vms.pop(name, None) is not None:
            self._touched[name] = self.seq + 1

    def replace_all(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Make the truth exactly ``rows`` (from a fresh inventory); only differences count."""
        fresh = {r["name"]: r for r in rows}
        for name in [n for n in self.vms if n not in fresh]:
            self.remove(name)
        for row in fresh.values():
            self.put(row)

    def set_report(self, report: Mapping[str, Any]) -> None:
        """Set the capacity report; it is sent again only when :func:`same_report` says so."""
        if not same_report(self.report, report):
            self.report = dict(report)
            self._report_touched = self.seq + 1

    @property
    def changed(self) -> bool:
        """Whether something changed since the latest report was sent."""
        return self._report_touched > self.sent or any(s > self.sent for s in self._touched.values())

    # -- reports --------------------------------------------------------------------------------

    def delta(self, *, since_ack: bool) -> list[ReportPart]:
        """The parts of a delta report.

        Args:
            since_ack: from the last acknowledged ``seq`` (the slow report: also a keepalive,
                sent even when nothing changed); otherwise from the last sent one, and nothing
                at all when nothing changed since.

        Returns:
            The parts to send, in order; none before the first acknowledgement (the resync
            comes first).
        """
        if self.acked is None:
            return []
        new = self.changed
        if not new and not since_ack:
            return []
        if new:
            self.seq += 1
        base = self.acked if since_ack else self.sent
        names = [n for n, s in self._touched.items() if s > base]
        rows = [self.vms[n] for n in names if n in self.vms]
        removed = [n for n in names if n not in self.vms]
        report = self.report if self._report_touched > base else None
        self.sent = self.seq
        return split_parts(self.epoch, base, self.seq, rows, removed, report, self.budget)

    def resync(self) -> list[ReportPart]:
        """The parts of a resync: the whole truth, replacing the receiver's view."""
        if self.changed or self.seq == 0:
            self.seq += 1
        self.sent = self.seq
        self.resync_wanted = False
        return split_parts(self.epoch, None, self.seq, list(self.vms.values()), [], self.report,
                           self.budget)

    def on_ack(self, ack: Ack) -> None:
        """Take the receiver's answer (one for another epoch, or from the future, is ignored)."""
        if ack.epoch != self.epoch:
            return
        if ack.resync:
            self.resync_wanted = True
            return
        if ack.seq is None or ack.seq > self.seq or (self.acked is not None and ack.seq <= self.acked):
            return
        self.acked = ack.seq
        # Changes the receiver holds need never be sent again: every later base is >= acked.
        self._touched = {n: s for n, s in self._touched.items() if s > ack.seq}


class ReportReceiver:
    """The controller's side for one site: its view, at ``seq`` of sender ``epoch``."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.seq: int | None = None
        self.vms: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] | None = None
        self._assembly: tuple[tuple, dict[int, ReportPart]] | None = None
        self._older: tuple[str, int] = ("", 0)  # an older epoch's resyncs since the current spoke

    def receive(self, part: ReportPart) -> Received:
        """Take one part of a report. Returns: what was done and what to answer."""
        if part.epoch == self.epoch:
            self._older = ("", 0)
        if part.base is None:
            if part.epoch == self.epoch and self.seq is not None and part.seq <= self.seq:
                return Received(Ack(part.epoch, self.seq))  # an old resync, already overtaken
            whole = self._assemble(part)
            if whole is None:
                return Received(None)
            if self.epoch is not None and whole.epoch < self.epoch:
                # Epochs sort by their incarnation's start: this is likely a dead one's straggler.
                seen = self._older[1] + 1 if self._older[0] == whole.epoch else 1
                self._older = (whole.epoch, seen)
                if seen < _OLDER_EPOCH_RESYNCS:
                    return Received(None)
            return self._replace(whole)
        if part.epoch != self.epoch or self.seq is None:
            return Received(Ack(part.epoch, None, resync=True))
        if part.seq <= self.seq or part.base > self.seq:
            # Repeated, overtaken, a keepalive, or beyond a gap: say where the view is.
            return Received(Ack(self.epoch, self.seq))
        whole = self._assemble(part)
        return Received(None) if whole is None else self._apply(whole)

    def _assemble(self, part: ReportPart) -> ReportPart | None:
        if part.parts <= 1:
            return part
        key = (part.epoch, part.base, part.seq, part.parts)
        if self._assembly is None or self._assembly[0] != key:
            self._assembly = (key, {})  # parts of one report arrive together; a stray one restarts
        got = self._assembly[1]
        got[part.part] = part
        if len(got) < part.parts:
            return None
        self._assembly = None
        ordered = [got[i] for i in range(part.parts)]
        return ReportPart(part.epoch, part.base, part.seq, 0, 1,
                          tuple(r for p in ordered for r in p.vms),
                          tuple(n for p in ordered for n in p.removed),
                          next((p.report for p in ordered if p.report is not None), None))

    def _replace(self, whole: ReportPart) -> Received:
        fresh = {r["name"]: dict(r) for r in whole.vms}
        self._older = ("", 0)
        changed = {n for n in self.vms.keys() | fresh.keys() if self.vms.get(n) != fresh.get(n)}
        self.vms, self.epoch, self.seq = fresh, whole.epoch, whole.seq
        report_changed = whole.report != self.report
        self.report = whole.report
        return Received(Ack(whole.epoch, whole.seq), True, frozenset(changed), report_changed, True)

    def _apply(self, whole: ReportPart) -> Received:
        changed = set()
        for row in whole.vms:
            if self.vms.get(row["name"]) != row:
                self.vms[row["name"]] = dict(row)
                changed.add(row["name"])
        for name in whole.removed:
            if self.vms.pop(name, None) is not None:
                changed.add(name)
        report_changed = whole.report is not None and whole.report != self.report
        if whole.report is not None:
            self.report = whole.report
        self.seq = whole.seq
        return Received(Ack(whole.epoch, whole.seq), True, frozenset(changed), report_changed)
