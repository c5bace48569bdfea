"""What the active domains of one libvirt host hold, kept without asking libvirt on every start.

Pure logic, no threads and no libvirt: :class:`LibvirtDriver` wraps it in a
lock, feeds it its own lifecycle calls and every lifecycle event, and asks
libvirt for the real list only when the ledger says it may be out of date.

Why: capacity is accounted by us, and asking libvirt meant one
``listAllDomains`` plus one ``info()`` per active domain on every start, so a
start on a host with N running VMs cost N+1 calls.

How it stays right:

- :meth:`UsageLedger.reset` loads the truth (libvirt's active domains).
- The driver's own successful start/destroy update it at once
  (:meth:`~UsageLedger.started`, :meth:`~UsageLedger.stopped`), and the
  driver says beforehand which event each call will cause
  (:meth:`~UsageLedger.expect`); that event, when it arrives on libvirt's
  event thread, is consumed without effect.
- Any other event that changes usage (someone else started or stopped a
  domain, a guest powered off or crashed, a migration) marks the ledger
  unknown, so the next reader reloads it from libvirt.

A ledger can only be stale for the time an event takes to arrive, the same
window in which any check-then-start on a shared host can race. Callers that
would *refuse* an operation on the ledger's word re-check with libvirt first.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._capacity import Resources
from .._events import EventKind

__all__ = ["UsageLedger", "USAGE_EVENTS"]

#: Event kinds that change what a host's active domains hold.
USAGE_EVENTS = frozenset({EventKind.STARTED, EventKind.STOPPED, EventKind.CRASHED, EventKind.MIGRATED})


class UsageLedger:
    """Resources held by the active domains of one host (vcpus and memory)."""

    def __init__(self) -> None:
        self._active: dict[str, Resources] | None = None  # None: unknown, reload from libvirt
        self._cpus = 0
        self._memory_mb = 0
        self._expected: dict[tuple[str, EventKind], int] = {}
        self._epoch = 0  # bumped by every change, so a reload that raced one is dropped

    @property
    def known(self) -> bool:
        """Whether :meth:`used` can answer without asking libvirt."""
        return self._active is not None

    def used(self) -> Resources | None:
        """The total held by active domains, or None when unknown."""
        if self._active is None:
            return None
        return Resources(self._cpus, self._memory_mb, 0)

    def begin_reload(self) -> int:
        """Call before listing libvirt's active domains; pass the result to :meth:`reset`."""
        return self._epoch

    def reset(self, active: Mapping[str, Resources], epoch: int | None = None) -> bool:
        """Load the truth: every active domain and what it holds.

        Args:
            active: domain name -> what it holds, as libvirt listed them.
            epoch: :meth:`begin_reload`'s token; if the ledger was invalidated
                since, the listing may predate that change and is not loaded.

        Returns:
            Whether it was loaded.
        """
        if epoch is not None and epoch != self._epoch:
            return False
        self._active = dict(active)
        self._cpus = sum(r.cpus for r in self._active.values())
        self._memory_mb = sum(r.memory_mb for r in self._active.values())
        return True

    def invalidate(self, *, forget_expected: bool = False) -> None:
        """Forget the totals; the next reader reloads them.

        Args:
            forget_expected: also drop the events still expected (when the driver
                starts or stops watching: across that, expected events may never come).
        """
        self._active = None
        self._epoch += 1
        if forget_expected:
            self._expected.clear()

    def expect(self, name: str, kind: EventKind) -> None:
        """Say that a call about to be made will cause one ``kind`` event for ``name``."""
        key = (name, kind)
        self._expected[key] = self._expected.get(key, 0) + 1

    def cancel(self, name: str, kind: EventKind) -> None:
        """The call announced with :meth:`expect` failed: no event will come."""
        self._consume((name, kind))

    def started(self, name: str, size: Resources) -> None:
        """Our own start of ``name`` succeeded."""
        self._epoch += 1  # a listing taken before this start must not be loaded after it
        if self._active is not None and name not in self._active:
            self._active[name] = size
            self._cpus += size.cpus
            self._memory_mb += size.memory_mb

    def stopped(self, name: str) -> None:
        """Our own destroy of ``name`` succeeded."""
        self._epoch += 1
        if self._active is not None:
            size = self._active.pop(name, None)
            if size is not None:
                self._cpus -= size.cpus
                self._memory_mb -= size.memory_mb

    def observe(self, name: str, kind: EventKind) -> None:
        """A lifecycle event arrived: consume it if we caused it, else invalidate if it changes usage."""
        if kind is EventKind.REMOVED:
            # An undefined domain will not produce the events still expected for it.
            for key in [k for k in self._expected if k[0] == name]:
                del self._expected[key]
            return
        if self._consume((name, kind)):
            return
        if kind in USAGE_EVENTS:
            self.invalidate()

    def _consume(self, key: tuple[str, EventKind]) -> bool:
        left = self._expected.get(key, 0)
        if left <= 0:
            return False
        if left == 1:
            del self._expected[key]
        else:
            self._expected[key] = left - 1
        return True
