"""LibvirtConnection: one libvirt connection, its lifecycle events and a domain-handle cache.

The base of :class:`~drivers.libvirt.LibvirtDriver`, which adds the Driver
operations: this part opens and closes the connection, registers libvirt's
lifecycle callback while there are subscribers (feeding the usage ledger and
the subscribers), notices a dropped connection, and keeps name -> virDomain
handles so that an operation costs no lookup.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import libvirt
import structlog

from .._capacity import Resources
from .._driver import Driver
from .._events import EventKind
from ..errors import AuthenticationFailed, ConnectionLost, DriverError, VMNotFound
from ._errors import translate
from ._eventloop import ensure_event_loop
from ._ledger import UsageLedger
from ._states import map_event

__all__ = ["LibvirtConnection"]

T = TypeVar("T")

_log = structlog.get_logger("wind.drivers.libvirt")


class LibvirtConnection(Driver):
    """The connection half of a libvirt driver (abstract: the operations are LibvirtDriver's).

    Args:
        uri: libvirt connection URI.
        name: driver name in events and errors (default: the URI).
        cpus: total cpus to account against (default: what the host reports).
        memory_mb: total memory to account against (default: what the host reports).
        disk_gb: total disk to account against (libvirt does not report one).
    """

    def __init__(self, *, uri: str, name: str | None, cpus: int | None, memory_mb: int | None,
                 disk_gb: int) -> None:
        super().__init__(name=name or uri)
        self.uri = uri
        self._cpus, self._memory_mb, self._disk_gb = cpus, memory_mb, disk_gb
        self._conn: libvirt.virConnect | None = None
        self._callback_id: int | None = None
        # What active domains hold, kept from our own calls and libvirt's events
        # (see _ledger); guarded by _ledger_lock, which is never held across a
        # libvirt call because the event thread takes it too.
        self._ledger = UsageLedger()
        self._ledger_lock = threading.Lock()
        self._events_lock = threading.Lock()  # (de)registering the lifecycle callback
        # name -> virDomain, saving a lookup per call; a stale handle (someone
        # else undefined it) is noticed and replaced by _on_domain.
        self._doms: dict[str, libvirt.virDomain] = {}
        self.host = "localhost"
        self._host_total = Resources()

    # --- connection -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is open (and has not been reported closed)."""
        return self._conn is not None

    def connect(self) -> None:
        """Open the URI, register for lifecycle events and read the host's size.

        Raises:
            ConnectionLost: the URI cannot be opened (recoverable).
            AuthenticationFailed: libvirt refused us.
        """
        if self._conn is not None:
            return
        ensure_event_loop()  # must precede open() for events to flow
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            err = translate(exc, driver=self.name, op="connect")
            if not isinstance(err, AuthenticationFailed):  # any other failure to open: try again later
                err = ConnectionLost(f"cannot open libvirt URI {self.uri!r}: {exc.get_error_message()}",
                                     driver=self.name, op="connect", code=exc.get_error_code())
            raise err from exc
        try:
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(5, 3)  # remote URIs: notice a dead daemon within ~20 s
            with contextlib.suppress(libvirt.libvirtError):
                conn.registerCloseCallback(self._on_close, None)
            info = conn.getInfo()
            self.host = conn.getHostname()
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
            raise translate(exc, driver=self.name, op="connect") from exc
        self._host_total = Resources(self._cpus or int(info[2]), self._memory_mb or int(info[1]), self._disk_gb)
        with self._events_lock:
            self._callback_id = None  # a dropped connection (_on_close) took its registration with it
            self._conn = conn
        if self.has_subscribers:
            try:
                self.on_event_demand(True)
            except DriverError:
                self.close()
                raise
        _log.debug("libvirt.connected", driver=self.name, uri=self.uri, host=self.host)

    @property
    def watching_events(self) -> bool:
        """Whether the lifecycle callback is registered with libvirt (connected, with subscribers)."""
        return self._callback_id is not None

    def on_event_demand(self, wanted: bool) -> None:
        """Register the lifecycle callback with libvirt while there are subscribers (caller's thread).

        Raises:
            DriverError: libvirt refused the registration (the subscriber is
                kept; :meth:`connect` registers again on reconnect).
        """
        with self._events_lock:
            conn = self._conn
            if conn is None or wanted == (self._callback_id is not None):
                return
            # Both ways, forget what the events kept: while unwatched nothing
            # tells us about changes made by others.
            self._doms.clear()
            with self._ledger_lock:
                self._ledger.invalidate(forget_expected=True)
            try:
                if wanted:
                    self._callback_id = conn.domainEventRegisterAny(
                        None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
                else:
                    callback_id, self._callback_id = self._callback_id, None
                    conn.domainEventDeregisterAny(callback_id)
            except libvirt.libvirtError as exc:
                raise translate(exc, driver=self.name, op="watch_events") from exc

    def close(self) -> None:
        """Deregister events and close the connection (idempotent, never raises)."""
        with self._events_lock:
            conn, self._conn = self._conn, None
            callback_id, self._callback_id = self._callback_id, None
        self._doms.clear()
        if conn is None:
            return
        with contextlib.suppress(libvirt.libvirtError):
            if callback_id is not None:
                conn.domainEventDeregisterAny(callback_id)
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        # libvirt event-loop thread: the daemon went away (EOF, keepalive, error).
        if self._conn is None:
            return
        self._conn = None
        self.notify_connection_lost(ConnectionLost(
            f"libvirt connection to {self.uri!r} closed (reason {reason})", driver=self.name, reason=reason))

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        # libvirt event-loop thread.
        mapped = map_event(event, detail)
        if mapped is None:
            return
        kind, name = mapped[0], dom.name()
        with self._ledger_lock:
            self._ledger.observe(name, kind)
        if kind is EventKind.REMOVED:
            self._doms.pop(name, None)
        self.emit(kind, name, mapped[1], self.host)

    @contextlib.contextmanager
    def _call(self, op: str, vm: str | None = None) -> Iterator[libvirt.virConnect]:
        conn = self._connection(op, vm)
        try:
            yield conn
        except libvirt.libvirtError as exc:
            raise translate(exc, driver=self.name, vm=vm, op=op, conn=conn) from exc

    # The lifecycle calls below spell out _call's try/except instead of using
    # it: they are the hot path (bench/drivers.py) and a generator-based
    # context manager per call was a measurable share of it.

    def _connection(self, op: str, vm: str | None = None) -> libvirt.virConnect:
        conn = self._conn
        if conn is None:
            raise ConnectionLost(f"{op}: libvirt driver {self.name!r} is not connected; call connect() first",
                                 driver=self.name, vm=vm, op=op)
        return conn

    def _domain(self, conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
        """A fresh handle (looked up by name, then cached for :meth:`_on_domain`)."""
        try:
            dom = self._doms[name] = conn.lookupByName(name)
            return dom
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise VMNotFound(f"no VM named {name!r} on libvirt {self.uri!r}", driver=self.name, vm=name) from exc
            raise

    def _on_domain(self, conn: libvirt.virConnect, name: str, body: Callable[[libvirt.virDomain], T]) -> T:
        """Run ``body(dom)`` on a cached handle, or on a fresh one if the cached one is stale.

        A handle names its domain by UUID: if someone else undefined the
        domain (and maybe defined another of the same name), the first call on
        the cached handle fails with VIR_ERR_NO_DOMAIN; then the handle is
        dropped and ``body`` runs once more on a fresh lookup. So ``body``
        must make that failing call before any change (a state read first).
        REMOVED events drop handles early, but correctness does not depend on
        them (the driver watches events only while it has subscribers).
        """
        dom = self._doms.get(name)
        if dom is not None:
            try:
                return body(dom)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                self._doms.pop(name, None)
        return body(self._domain(conn, name))
