"""The kernel boundary: a thin pyroute2 wrapper that reads links/FDB and makes single changes.

This is the only module that imports pyroute2; every ``NetlinkError`` and
``OSError`` it meets becomes a :class:`~overlay.errors.RealizeError` here.
It holds no policy: what to change is decided in :mod:`._realizer`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ._model import FdbEntry
from .errors import NamespaceNotFound, RealizeError

T = TypeVar("T")

_IFF_UP = 0x1
_NETNS_DIR = "/var/run/netns"


class Link(NamedTuple):
    """What the realizer needs to know about one network device."""

    index: int
    name: str
    kind: str | None
    master: int | None
    mtu: int
    up: bool
    vni: int | None = None
    local: str | None = None
    port: int | None = None
    learning: bool | None = None
    lower: int | None = None  # the underlay device a VXLAN is bound to


class Kernel:
    """Netlink access to one network namespace (or the current one).

    Args:
        netns: name under ``/var/run/netns`` (as ``ip netns add`` creates it);
            ``None`` for the caller's own namespace. It is never created here.

    Raises:
        NamespaceNotFound: ``netns`` does not exist.

    Not thread-safe: use one instance from one thread at a time.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        if netns is not None and not os.path.exists(os.path.join(_NETNS_DIR, netns)):
            raise NamespaceNotFound(f"network namespace {netns!r} does not exist; create it (ip netns add) "
                                    "before starting the realizer", netns=netns)
        # flags=0: open only; pyroute2's default would silently create the namespace.
        self._ipr = self._call("open", None, lambda: IPRoute(netns=netns, flags=0) if netns else IPRoute())

    def close(self) -> None:
        """Release the netlink socket."""
        self._ipr.close()

    def _call(self, op: str, device: str | None, fn: Callable[[], T], *, ok: tuple[int, ...] = ()) -> T:
        try:
            return fn()
        except NetlinkError as exc:
            if exc.code in ok:
                return None  # type: ignore[return-value]
            raise RealizeError(f"kernel refused {op}: {os.strerror(exc.code)}", errno=exc.code,
                               device=device, netns=self.netns) from None
        except FileNotFoundError:
            raise NamespaceNotFound(f"network namespace {self.netns!r} vanished during {op}",
                                    netns=self.netns) from None
        except OSError as exc:
            raise RealizeError(f"netlink {op} failed: {exc}", errno=exc.errno, device=device,
                               netns=self.netns) from None

    # -- reading -----------------------------------------------------------

    def links(self) -> dict[str, Link]:
        """Every device in the namespace, by name."""
        msgs = self._call("link dump", None, lambda: list(self._ipr.get_links()))
        out: dict[str, Link] = {}
        for msg in msgs:
            link = _parse_link(msg)
            out[link.name] = link
        return out

    def link(self, name: str) -> Link | None:
        """One device by name (a single netlink get, much cheaper than a dump), or ``None``."""
        msgs = self._call("link get", name, lambda: list(self._ipr.link("get", ifname=name)), ok=(errno.ENODEV,))
        return _parse_link(msgs[0]) if msgs else None

    def link_of_address(self, ip: str) -> Link | None:
        """The device carrying the local address ``ip``, or ``None``."""
        msgs = self._call("addr dump", None, lambda: list(self._ipr.get_addr()))
        for msg in msgs:
            if msg.get_attr("IFA_ADDRESS") == ip or msg.get_attr("IFA_LOCAL") == ip:
                index = msg["index"]
                for link in self.links().values():
                    if link.index == index:
                        return link
        return None

    def fdb(self, index: int | None = None) -> dict[int, set[FdbEntry]]:
        """Remote (VTEP) FDB entries by ifindex (of one device if ``index`` is given);
        learned and local bridge entries are skipped."""
        query = {"ifindex": index} if index is not None else {}
        msgs = self._call("fdb dump", None, lambda: list(self._ipr.fdb("dump", **query)))
        out: dict[int, set[FdbEntry]] = {}
        for msg in msgs:
            dst = msg.get_attr("NDA_DST")
            if dst is None:
                continue
            out.setdefault(msg["ifindex"], set()).add(FdbEntry(msg.get_attr("NDA_LLADDR"), dst))
        return out

    # -- changing ----------------------------------------------------------

    def add_bridge(self, name: str, mtu: int) -> int:
        """Create a bridge, set its MTU and bring it up; returns its ifindex."""
        self._call("bridge add", name, lambda: self._ipr.link("add", ifname=name, kind="bridge"))
        index = self.index_of(name)
        self.set_link(index, name, mtu=mtu, state="up")
        return index

    def add_vxlan(self, name: str, *, vni: int, local: str, port: int, lower: int, master: int, mtu: int) -> int:
        """Create a unicast VXLAN device (no learning: the FDB is static), enslave and raise it."""
        local_attr = "vxlan_local6" if ":" in local else "vxlan_local"
        self._call("vxlan add", name, lambda: self._ipr.link(
            "add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_port=port, vxlan_learning=0,
            vxlan_link=lower, **{local_attr: local}))
        index = self.index_of(name)
        self.set_link(index, name, master=master, mtu=mtu, state="up")
        return index

    def index_of(self, name: str) -> int:
        found = self._call("link lookup", name, lambda: self._ipr.link_lookup(ifname=name))
        if not found:
            raise RealizeError("device vanished right after it was created", device=name, netns=self.netns)
        return found[0]

    def set_link(self, index: int, name: str, **attrs: Any) -> None:
        """Change attributes (``mtu=``, ``master=``, ``state="up"``) of one device."""
        self._call("link set", name, lambda: self._ipr.link("set", index=index, **attrs))

    def delete(self, index: int, name: str) -> None:
        """Delete one device; a device already gone is not an error."""
        self._call("link del", name, lambda: self._ipr.link("del", index=index), ok=(errno.ENODEV,))

    def fdb_add(self, index: int, name: str, entry: FdbEntry) -> None:
        """Add one remote FDB entry (``append``: several VTEPs per MAC for flooding); idempotent."""
        self._call("fdb append", name, lambda: self._ipr.fdb(
            "append", ifindex=index, lladdr=entry.mac, dst=entry.dst), ok=(errno.EEXIST,))

    def fdb_del(self, index: int, name: str, entry: FdbEntry) -> None:
        """Remove one remote FDB entry; an entry already gone is not an error."""
        self._call("fdb del", name, lambda: self._ipr.fdb(
            "del", ifindex=index, lladdr=entry.mac, dst=entry.dst), ok=(errno.ENOENT,))


def _parse_link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    base = dict(index=msg["index"], name=msg.get_attr("IFLA_IFNAME"), kind=kind,
                master=msg.get_attr("IFLA_MASTER"), mtu=msg.get_attr("IFLA_MTU"),
                up=bool(msg["flags"] & _IFF_UP))
    if kind == "vxlan":
        data = info.get_attr("IFLA_INFO_DATA")
        base.update(vni=data.get_attr("IFLA_VXLAN_ID"),
                    local=data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6"),
                    port=data.get_attr("IFLA_VXLAN_PORT"), learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
                    lower=data.get_attr("IFLA_VXLAN_LINK"))
    return Link(**base)
