"""Monitors and links through a node, local or across nodes (Erlang's monitor/link/unlink).

A remote monitor is one MONITOR envelope and a DOWN back; a remote link is two monitors, one
each way, whose watchers turn the Down into an exit signal (``supervisors.exit_signal``) for
the local end. The link table, keyed by ``(local actor urn, remote address)``, makes
``link`` idempotent and lets ``unlink`` take both monitors back (UNLINK tells the far side).

Threads: ``monitor``/``link``/``unlink`` run on the caller's thread; ``on_link``/
``on_unlink`` on the I/O thread; watchers of remote targets (and :class:`ExitTo`) on the
notifier thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pykka
import structlog

import supervisors
from wind_actors.errors import NodeError

from ._refs import RemoteRef
from ._wire import Kind

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Watches", "ExitTo"]

_log = structlog.get_logger("wind.runtime.watches")

LinkKey = tuple[str, str]  # (local actor urn, remote "name@node")
_RESERVED = ""  # a link being set up: its monitor id is not known yet


class ExitTo:
    """Watcher turning the Down of a linked remote actor into an exit signal for the local end.

    Runs on the notifier thread; drops the link from the table first so ``unlink`` and a
    later ``link`` see it gone.
    """

    def __init__(self, watches: Watches, key: LinkKey, actor: pykka.ActorRef[Any],
                 sender: RemoteRef) -> None:
        self.watches = watches
        self.key = key
        self.actor = actor
        self.sender = sender

    def __call__(self, down: supervisors.Down) -> None:
        self.watches.forget_link(self.key, down.monitor_id)
        try:
            supervisors.exit_signal(self.actor, self.sender, down.reason)
        except supervisors.NotWatchableError:
            _log.warning("exit signal not delivered: the linked actor is not a WatchedActor",
                         actor=str(self.actor), sender=self.sender.address,
                         reason=supervisors.describe(down.reason))


class Watches:
    """Monitors and links of one node (thread-safe)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._links: dict[LinkKey, str] = {}
        self._lock = threading.Lock()

    # -- monitors -------------------------------------------------------------------------------

    def monitor(self, ref: RemoteRef | pykka.ActorRef[Any], watcher: Any) -> str:
        """See :meth:`Node.monitor`."""
        node = self.node
        if isinstance(ref, pykka.ActorRef):
            return supervisors.monitor(ref, watcher)
        if ref.node_name == node.name:
            return self._monitor_local(ref, watcher)
        if node._stopped or not node.knows(ref.node_name):
            public_id, _ = node.monitors.new_public_id()
            node.deliver(watcher, supervisors.Down(public_id, ref, supervisors.NOCONNECTION))
            return public_id
        entry = node.monitors.add_out(ref.node_name, ref, watcher)
        node.transport.send(ref.node_name, [Kind.MONITOR, entry.wire_id, ref.name])  # type: ignore[union-attr]
        return entry.public_id

    def _monitor_local(self, ref: RemoteRef, watcher: Any) -> str:
        node = self.node
        public_id, _ = node.monitors.new_public_id()
        actor = node.whereis(ref.name)
        if actor is None:
            node.deliver(watcher, supervisors.Down(public_id, ref, supervisors.NOPROC))
            return public_id

        def relay(down: supervisors.Down) -> None:
            node.monitors.pop_local(public_id)
            node.deliver(watcher, supervisors.Down(public_id, ref, down.reason))

        node.monitors.add_local(public_id, supervisors.monitor(actor, relay))
        return public_id

    def demonitor(self, monitor_id: str) -> bool:
        """See :meth:`Node.demonitor`."""
        node = self.node
        local = node.monitors.pop_local(monitor_id)
        if local is not None:
            return supervisors.demonitor(local)
        if monitor_id.startswith("rmon-") and monitor_id[5:].isdigit():
            entry = node.monitors.pop_out(int(monitor_id[5:]))
            if entry is None:
                return False
            node.transport.send(entry.peer, [Kind.DEMONITOR, entry.wire_id])  # type: ignore[union-attr]
            return True
        return supervisors.demonitor(monitor_id)

    # -- links ------------------------------------------------------------------------------------

    def link(self, local_ref: RemoteRef | pykka.ActorRef[Any], remote_ref: RemoteRef) -> None:
        """See :meth:`Node.link`."""
        node = self.node
        actor = self._local_actor(local_ref, "link")
        if remote_ref.node_name == node.name:
            target = node.whereis(remote_ref.name)
            if target is None:
                supervisors.exit_signal(actor, remote_ref, supervisors.NOPROC)
            else:
                supervisors.link(actor, target)
            return
        mine = node.ref_of(actor)
        if self._watch_linked(actor, remote_ref):
            node.transport.send(remote_ref.node_name,  # type: ignore[union-attr]
                                [Kind.LINK, remote_ref.name, mine.name])

    def unlink(self, local_ref: RemoteRef | pykka.ActorRef[Any], remote_ref: RemoteRef) -> None:
        """See :meth:`Node.unlink`."""
        node = self.node
        actor = self._local_actor(local_ref, "unlink")
        if remote_ref.node_name == node.name:
            target = node.whereis(remote_ref.name)
            if target is not None:
                supervisors.unlink(actor, target)
            return
        with self._lock:
            monitor_id = self._links.pop((actor.actor_urn, remote_ref.address), None)
        if monitor_id is None:
            return  # never linked, or the link already fired
        if monitor_id:
            self.demonitor(monitor_id)
        name = node.registry.name_of(actor)
        if name is not None and not node._stopped:
            node.transport.send(remote_ref.node_name,  # type: ignore[union-attr]
                                [Kind.UNLINK, remote_ref.name, name])

    def _local_actor(self, local_ref: RemoteRef | pykka.ActorRef[Any],
                     what: str) -> pykka.ActorRef[Any]:
        if not isinstance(local_ref, RemoteRef):
            return local_ref
        node = self.node
        actor = node.whereis(local_ref.name) if local_ref.node_name == node.name else None
        if actor is None:
            raise NodeError(f"{local_ref.address} is not a live local actor; {what} needs one",
                            node=node.name)
        return actor

    def _watch_linked(self, actor: pykka.ActorRef[Any], remote_ref: RemoteRef) -> bool:
        """Monitor ``remote_ref`` on behalf of the linked ``actor``; False if already linked."""
        key = (actor.actor_urn, remote_ref.address)
        with self._lock:
            if key in self._links:
                return False
            self._links[key] = _RESERVED
        monitor_id = self.monitor(remote_ref, ExitTo(self, key, actor, remote_ref))
        with self._lock:
            if self._links.get(key) == _RESERVED:  # else it fired already (noconnection)
                self._links[key] = monitor_id
        return True

    def forget_link(self, key: LinkKey, monitor_id: str) -> None:
        """Drop a link whose monitor fired (notifier thread)."""
        with self._lock:
            if self._links.get(key) in (monitor_id, _RESERVED):
                del self._links[key]

    def links(self) -> int:
        """How many remote links this node holds."""
        return len(self._links)

    # -- from the wire (I/O thread) ---------------------------------------------------------------

    def on_link(self, src: str, target: str, peer_actor: str) -> None:
        """A LINK: ``peer_actor@src`` linked itself with our ``target``; watch it back."""
        actor = self.node.whereis(target)
        if actor is not None:  # else the linker's own monitor reports noproc
            self._watch_linked(actor, RemoteRef(peer_actor, src, self.node))

    def on_unlink(self, src: str, target: str, peer_actor: str) -> None:
        """An UNLINK: take back our half of the link between ``target`` and ``peer_actor@src``."""
        actor = self.node.whereis(target)
        if actor is None:
            return
        with self._lock:
            monitor_id = self._links.pop((actor.actor_urn, f"{peer_actor}@{src}"), None)
        if monitor_id:
            self.demonitor(monitor_id)

    # -- node stop --------------------------------------------------------------------------------

    def node_stopped(self) -> None:
        """Every remote watch ends as if all peers were lost (caller of ``Node.stop``).

        Local watchers of remote actors get ``Down(noconnection)`` and locally linked actors
        the ``noconnection`` exit signal; monitors remote nodes held on our actors are
        dropped (they see ``noconnection`` on their side when the connection closes).
        """
        node = self.node
        for mon in node.monitors.pop_all_out():
            node.deliver(mon.watcher, supervisors.Down(mon.public_id, mon.ref,
                                                       supervisors.NOCONNECTION))
        for local_id in node.monitors.pop_all_incoming():
            supervisors.demonitor(local_id)
