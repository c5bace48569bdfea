"""LibvirtDriver: any libvirt URI (test:///, qemu:///system, qemu+ssh://...)."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import libvirt

from .._capabilities import Capabilities
from .._capacity import Capacity, HostCapacity, Resources
from .._events import EventKind
from .._info import VMInfo
from .._spec import NicSpec, VMSpec, check_name
from .._state import VMState
from ..errors import CapacityExceeded, InvalidState, VMExists
from ._connection import LibvirtConnection
from ._errors import translate
from ._states import map_state
from ._xml import WIND_NS, domain_xml, nic_xml, parse_domain

__all__ = ["LibvirtDriver"]

_ACTIVE = frozenset({VMState.RUNNING, VMState.PAUSED, VMState.MIGRATING, VMState.PENDING})
_ALLOWED_FROM = {
    "shutdown": frozenset({VMState.RUNNING}),
    "destroy": _ACTIVE,
    "suspend": frozenset({VMState.RUNNING}),
    "resume": frozenset({VMState.PAUSED}),
    "reboot": frozenset({VMState.RUNNING}),
}

_UNDEFINE_FLAGS = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE


class LibvirtDriver(LibvirtConnection):
    """A driver for one libvirt connection (one host).

    Lifecycle events arrive through libvirt's event loop, one thread per
    process (:func:`drivers.libvirt.ensure_event_loop`); subscriber callbacks
    run on that thread. The driver registers with libvirt for them only
    while it has subscribers: libvirt-python delivers every event into
    Python on that thread, and the GIL hand-offs it causes cost more than
    the libvirt calls themselves (bench/drivers.py). While it watches, it
    also keeps the active domains' usage and a name -> domain cache
    up to date from the events; while it does not, it asks libvirt instead.

    Capacity is accounted by us (libvirt's test driver does not enforce it):
    a start that would over-commit cpus or memory raises CapacityExceeded.

    ``test:///default`` is shared by every connection in the process (a
    reconnect finds the same domains); ``test:///abs/path/host.xml`` opens a
    fresh simulated host of the size the file describes on every connect.

    Args:
        uri: libvirt connection URI.
        name: driver name in events and errors (default: the URI).
        domain_type: ``test``, ``qemu`` or ``kvm`` (default: ``test`` for
            ``test:`` URIs, else ``qemu``, since KVM here hangs guests).
        arch: guest architecture for non-test domains.
        cpus: total cpus to account against (default: what the host reports).
        memory_mb: total memory to account against (default: what the host reports).
        disk_gb: total disk to account against (libvirt does not report one).
        live_migration: declare live migration (``migrateToURI3`` to
            ``migrate_uri``); off by default because test:/// cannot migrate.
        migrate_uri: destination URI template, ``{host}`` is the destination.
    """

    kind = "libvirt"

    def __init__(
        self,
        *,
        uri: str = "test:///default",
        name: str | None = None,
        domain_type: str | None = None,
        arch: str = "x86_64",
        cpus: int | None = None,
        memory_mb: int | None = None,
        disk_gb: int = 1000,
        live_migration: bool = False,
        migrate_uri: str = "qemu+ssh://{host}/system",
    ) -> None:
        super().__init__(uri=uri, name=name, cpus=cpus, memory_mb=memory_mb, disk_gb=disk_gb)
        self.domain_type = domain_type or ("test" if uri.startswith("test:") else "qemu")
        self.arch = arch
        self._migrate_uri = migrate_uri
        self.capabilities = Capabilities(
            suspend=True, reboot=True, live_migration=live_migration, snapshots=True, console=True,
            nic_attach=self.domain_type != "test",  # the test driver lacks virDomainAttachDeviceFlags
            push_events=True, per_host_capacity=True,
        )
        self._lock = threading.Lock()  # serializes capacity check + start

    # --- inventory -------------------------------------------------------------

    def _info(self, dom: libvirt.virDomain) -> VMInfo:
        state, reason = dom.state()
        _, max_kib, _, vcpus, _ = dom.info()
        parsed = parse_domain(dom.XMLDesc(0))
        spec = parsed.spec or {}
        return VMInfo(dom.name(), map_state(state, reason), vcpus, max_kib // 1024, int(spec.get("disk_gb", 0)),
                      self.host, dom.UUIDString(), parsed.nics, spec.get("metadata", {}), self.name)

    def list(self) -> list[VMInfo]:
        """See :meth:`Driver.list` (every domain, Wind's or not)."""
        with self._call("list") as conn:
            return [self._info(d) for d in conn.listAllDomains(0)]

    def info(self, name: str) -> VMInfo:
        """See :meth:`Driver.info`."""
        with self._call("info", name) as conn:
            return self._on_domain(conn, name, self._info)

    def _used(self, conn: libvirt.virConnect, *, fresh: bool = False) -> Resources:
        """What active domains hold: from the ledger, or from libvirt when unknown (or ``fresh``).

        Unwatched (no subscribers, so no events), the ledger cannot hear of
        others' changes: every call asks libvirt.
        """
        watching = self._callback_id is not None
        epoch = 0
        if watching:
            with self._ledger_lock:
                used = None if fresh else self._ledger.used()
                epoch = self._ledger.begin_reload()
            if used is not None:
                return used
        active = {}
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            _, _, cur_kib, vcpus, _ = dom.info()
            active[dom.name()] = Resources(vcpus, cur_kib // 1024, 0)
        if watching:
            with self._ledger_lock:
                self._ledger.reset(active, epoch)
        return Resources(sum(r.cpus for r in active.values()), sum(r.memory_mb for r in active.values()), 0)

    def capacity(self) -> Capacity:
        """See :meth:`Driver.capacity`: one host; used = active domains' vcpus and current memory."""
        with self._call("capacity") as conn:
            return Capacity.from_hosts([HostCapacity(self.host, self._host_total, self._used(conn))])

    # --- lifecycle -------------------------------------------------------------

    def define(self, spec: VMSpec) -> VMInfo:
        """See :meth:`Driver.define`; the domain XML comes from :func:`domain_xml`."""
        want = Resources(spec.vcpus, spec.memory_mb, spec.disk_gb)
        if not want.fits_in(self._host_total):
            raise CapacityExceeded(f"VM {spec.name!r} needs {want.as_dict()} but host {self.host!r} has "
                                   f"{self._host_total.as_dict()}", driver=self.name, vm=spec.name)
        conn = self._connection("define", spec.name)
        xml = domain_xml(spec, domain_type=self.domain_type, arch=self.arch)
        try:
            # No lookup first: libvirt refuses a second domain of the same name
            # (it gets a fresh UUID), which translate() maps to VMExists.
            dom = self._doms[spec.name] = conn.defineXML(xml)
            if any(n.mac is None for n in spec.nics):
                return self._info(dom)  # libvirt chose MACs: read them back
            uuid = dom.UUIDString()
        except libvirt.libvirtError as exc:
            raise translate(exc, driver=self.name, vm=spec.name, op="define", conn=conn) from exc
        return VMInfo(spec.name, VMState.DEFINED, spec.vcpus, spec.memory_mb, spec.disk_gb, self.host,
                      uuid, spec.nics, spec.metadata, self.name)

    def start(self, name: str) -> None:
        """See :meth:`Driver.start`; raises CapacityExceeded (recoverable) rather than over-commit."""
        conn = self._connection("start", name)
        watching = self._callback_id is not None  # unwatched, the ledger is unknown and no event comes

        def body(dom: libvirt.virDomain) -> Resources:
            state, max_kib, _, vcpus, _ = dom.info()
            if map_state(state, 0).is_active:
                raise InvalidState(f"cannot start VM {name!r}: it is already active", driver=self.name,
                                   vm=name, state=map_state(state, 0).value)
            want = Resources(vcpus, max_kib // 1024, 0)
            if not self._fits(want, self._used(conn)):
                # Refuse only on libvirt's word, not on a ledger that may lag an event.
                used = self._used(conn, fresh=True)
                if not self._fits(want, used):
                    free = self._host_total - used
                    raise CapacityExceeded(f"host {self.host!r} has {free.as_dict()} free, VM {name!r} needs "
                                           f"{want.as_dict()}", driver=self.name, vm=name, recoverable=True)
            if watching:
                self._expecting(name, EventKind.STARTED, dom.create)
            else:
                dom.create()
            return want

        with self._lock:
            try:
                want = self._on_domain(conn, name, body)
            except libvirt.libvirtError as exc:
                raise translate(exc, driver=self.name, vm=name, op="start", conn=conn) from exc
            if watching:
                with self._ledger_lock:
                    self._ledger.started(name, want)

    def _fits(self, want: Resources, used: Resources) -> bool:
        return want.cpus + used.cpus <= self._host_total.cpus and \
            want.memory_mb + used.memory_mb <= self._host_total.memory_mb

    def _expecting(self, name: str, kind: EventKind, call: Any, *args: Any) -> Any:
        """Make a libvirt call that causes one ``kind`` event for ``name`` (the ledger skips it).

        Only while watching: unwatched, no event comes to consume the expectation.
        """
        with self._ledger_lock:
            self._ledger.expect(name, kind)
        try:
            return call(*args)
        except BaseException:
            with self._ledger_lock:
                self._ledger.cancel(name, kind)
            raise

    def _simple(self, op: str, name: str, fn: str, *args: Any) -> None:
        conn = self._connection(op, name)
        watching = self._callback_id is not None

        def body(dom: libvirt.virDomain) -> None:
            try:
                if op == "destroy" and watching:
                    self._expecting(name, EventKind.STOPPED, dom.destroy)
                    with self._ledger_lock:
                        self._ledger.stopped(name)
                else:
                    getattr(dom, fn)(*args)
            except libvirt.libvirtError:
                # Backends disagree on the error for a wrong state (the test
                # driver says "internal error"); the contract says InvalidState.
                # Looked at only on failure, to keep the happy path one call.
                # (A stale handle fails here with NO_DOMAIN: _on_domain retries.)
                state = map_state(*dom.state())
                allowed = _ALLOWED_FROM[op]
                if state not in allowed:
                    raise InvalidState(f"cannot {op} VM {name!r} while it is {state.value}; allowed from "
                                       f"{sorted(s.value for s in allowed)}", driver=self.name, vm=name,
                                       state=state.value, op=op) from None
                raise

        try:
            self._on_domain(conn, name, body)
        except libvirt.libvirtError as exc:
            raise translate(exc, driver=self.name, vm=name, op=op, conn=conn) from exc

    def shutdown(self, name: str) -> None:
        """See :meth:`Driver.shutdown` (ACPI power button on real guests)."""
        self._simple("shutdown", name, "shutdown")

    def destroy(self, name: str) -> None:
        """See :meth:`Driver.destroy`."""
        self._simple("destroy", name, "destroy")

    def suspend(self, name: str) -> None:
        """See :meth:`Driver.suspend`."""
        self._simple("suspend", name, "suspend")

    def resume(self, name: str) -> None:
        """See :meth:`Driver.resume`."""
        self._simple("resume", name, "resume")

    def reboot(self, name: str) -> None:
        """See :meth:`Driver.reboot`."""
        self._simple("reboot", name, "reboot", 0)

    def undefine(self, name: str) -> None:
        """See :meth:`Driver.undefine`; refuses an active VM (libvirt would make it transient)."""
        conn = self._connection("undefine", name)

        def body(dom: libvirt.virDomain) -> None:
            if dom.isActive():
                raise InvalidState(f"cannot undefine VM {name!r} while it is active; destroy it first",
                                   driver=self.name, vm=name, state="running")
            dom.undefineFlags(_UNDEFINE_FLAGS)

        try:
            self._on_domain(conn, name, body)
        except libvirt.libvirtError as exc:
            raise translate(exc, driver=self.name, vm=name, op="undefine", conn=conn) from exc
        self._doms.pop(name, None)

    # --- optional --------------------------------------------------------------

    def migrate(self, name: str, dest_host: str) -> VMInfo:
        """Live-migrate to ``migrate_uri.format(host=dest_host)`` (needs ``live_migration=True``)."""
        if not self.capabilities.live_migration:
            raise self.not_supported("migrate", name)
        check_name(dest_host, what="destination host")
        with self._call("migrate", name) as conn:
            dom = self._domain(conn, name)
            before = self._info(dom)
            flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                     | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
            dom.migrateToURI3(self._migrate_uri.format(host=dest_host), {}, flags)
            with self._ledger_lock:
                self._ledger.invalidate()  # it left this host (its MIGRATED event says so too, later)
            return replace(before, host=dest_host)

    def snapshot(self, name: str, tag: str) -> None:
        """See :meth:`Driver.snapshot` (libvirt's default snapshot: internal for qcow2)."""
        check_name(tag, what="snapshot tag")
        root = ET.Element("domainsnapshot")
        ET.SubElement(root, "name").text = tag
        with self._call("snapshot", name) as conn:
            dom = self._domain(conn, name)
            if tag in dom.snapshotListNames(0):
                raise VMExists(f"VM {name!r} already has a snapshot {tag!r}", driver=self.name, vm=name)
            dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), 0)

    def console_log(self, name: str) -> str:
        """See :meth:`Driver.console_log`: the file-backed serial console of the domain."""
        with self._call("console_log", name) as conn:
            path = self._on_domain(conn, name, lambda dom: parse_domain(dom.XMLDesc(0)).console_log)
        if path is None:
            raise InvalidState(f"VM {name!r} has no file-backed serial console; set VMSpec.console_log",
                               driver=self.name, vm=name)
        return path

    def attach_nic(self, name: str, nic: NicSpec) -> VMInfo:
        """See :meth:`Driver.attach_nic` (live and persistent); records the NIC's network in metadata."""
        if not self.capabilities.nic_attach:
            raise self.not_supported("attach_nic", name)
        with self._call("attach_nic", name) as conn:
            dom = self._domain(conn, name)
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
            dom.attachDeviceFlags(nic_xml(nic, domain_type=self.domain_type), flags)
            spec = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).spec
            if spec is not None:
                spec["nics"] = [*spec.get("nics", ()), nic.as_dict()]
                # Live too: info() reads the live XML of a running domain.
                dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, f"<vm>{_xml_text(json.dumps(spec))}</vm>",
                                "wind", WIND_NS, flags)
            return self._info(dom)


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
