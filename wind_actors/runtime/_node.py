"""Node: one OS process's actor system on the network (Erlang's distributed node).

Threads of a node: the caller's threads (any actor may tell/ask), one I/O thread owning the
sockets (``wind-io-NODE``, see ``_transport``), the notifier thread running callbacks
(``wind-notify-NODE``) and, with CURVE, pyzmq's ZAP thread.

Actor-side contract. A local actor registered with :meth:`Node.register` receives what remote
(or local) senders ``tell`` it in ``on_receive(message)``, on its own thread, in FIFO order
per sender. For an ``ask`` the return value of ``on_receive`` is the reply (it must be wire
data); an exception raised there is sent back and raised by the caller's ``ask`` as
:class:`~wind_actors.errors.ActorError` (the actor lives on, Pykka's contract). While it handles a
remote message, ``self.sender`` is the sender's authenticated :class:`~._authz.Identity` (node,
role, site or tenant; ``None`` for a local sender); the runtime has already checked the
message's permission rule and the actor's :class:`~._authz.Access` (see ``_authz``). A sender is
not a ref: put ``node.ref_of(self.actor_ref)`` (or a known ref) in the message when the receiver
should answer, ask or monitor you.

The parts live in their own modules: names (``_registry``), pending asks (``_pending``),
reply slots (``_replies``), monitors and links (``_watches``), frames in (``_inbound``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import structlog
from pykka._envelope import Envelope

from wind_actors.config import NodeConfig
from wind_actors.errors import AskTimeout, NodeDownError, NodeError, NoSuchActor, WireError

from ._authz import OPEN, PEER, Access, Identity
from ._events import NodeDown, NodeUp, Notifier
from ._inbound import Inbound
from ._membership import Membership
from ._monitors import MonitorTable
from ._pending import PendingAsks
from ._refs import DEFAULT_ASK_TIMEOUT, RemoteRef, split_address
from ._registry import Registry
from ._replies import LocalReply, ReplyFuture, fail
from ._security import TrustPolicy, ZapAdapter, load_keypair, public_key_of
from ._transport import Transport, fds_needed, new_context, raise_fd_limit
from ._watches import Watches
from ._wire import Codec, Kind

__all__ = ["Node"]

_log = structlog.get_logger("wind.runtime.node")

_ASK = Kind.ASK.value
_TELL = Kind.TELL.value

# Contexts a stop could not destroy (a thread was still inside a socket call): referenced here
# for the life of the process, because a garbage-collected zmq.Context destroys itself, from
# whichever thread runs the collector, under the thread still using its sockets (an abort).
_LEFT_OPEN: list[Any] = []


class Node:
    """A named actor system reachable over ZeroMQ. Start it with :meth:`Node.start`."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.name = config.name
        self.address = ""
        self.counters: collections.Counter[str] = collections.Counter()
        self.codec = Codec(self._bind_ref, max_bytes=config.max_frame_bytes)
        self.membership = Membership(config.heartbeat_interval, config.heartbeat_misses,
                                     max_peers=config.max_peers,
                                     forget_after=config.forget_after, counters=self.counters)
        self.monitors = MonitorTable()
        self.registry = Registry(self.name)
        self.pending = PendingAsks()
        self.watches = Watches(self)
        self._addresses: dict[str, str] = dict(config.peers)
        self._subscribers: list[Callable[[Any], Any]] = []
        self._peer_events: dict[str, threading.Event] = {}
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._body_limit = config.max_frame_bytes - 512
        self._ctx = new_context(config.max_peers)
        self._zap: ZapAdapter | None = None
        self._keypair = None
        self._policy: TrustPolicy | None = None
        self._identities: dict[str, tuple[int, Identity]] = {}
        self._insecure_roles = {name: Identity(name, *role) for name, role in config.role_table().items()}
        self.notifier = Notifier(self.name)
        self.inbound = Inbound(self)
        self.transport: Transport | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def start(cls, config: NodeConfig | None = None, /, **settings: Any) -> Node:
        """Start a node: bind, start its threads and connect to its configured peers.

        Args:
            config: a :class:`~wind_actors.config.NodeConfig`; or pass its fields as keywords
                (``name=``, ``bind=``, ``keys_dir=``, ``insecure=``...).

        Returns:
            The running node.

        Raises:
            ConfigError: invalid settings. SecurityError: keys missing. NodeError: bind failed.
        """
        if config is None:
            config = NodeConfig(**settings)
        elif settings:
            raise TypeError("pass either a NodeConfig or keyword settings, not both")
        node = cls(config)
        try:
            node._start()
        except BaseException:
            node._teardown()
            raise
        return node

    def _start(self) -> None:
        cfg = self.config
        if cfg.insecure:
            _log.warning("node runs WITHOUT CURVE: plain TCP, any peer is trusted",
                         node=self.name, insecure=True, allowed="insecure = false with keys_dir")
        else:
            self._keypair = load_keypair(cfg.secret_key_path)  # type: ignore[arg-type]
            self._policy = TrustPolicy(cfg.keys_dir)  # type: ignore[arg-type]
            self._zap = ZapAdapter(self._ctx, self._policy, self.name)
            self._zap.start()
        self._fit_fd_limit()
        self.transport = Transport(node=self.name, bind=cfg.bind, context=self._ctx,
                                   keypair=self._keypair, max_frame_bytes=cfg.max_frame_bytes,
                                   handler=self.inbound, counters=self.counters,
                                   max_peers=cfg.max_peers, admits=self.membership.tracks,
                                   full=self.membership.full,
                                   on_fatal=self._io_failed, lookup=self.resolve)
        self.address = self.transport.address
        self.transport.start()
        for peer in cfg.peers:
            self._want(peer)
        _log.info("node started", node=self.name, address=self.address, curve=not cfg.insecure,
                  heartbeat_interval=cfg.heartbeat_interval, heartbeat_misses=cfg.heartbeat_misses,
                  max_peers=cfg.max_peers)

    def _fit_fd_limit(self) -> None:
        """Raise the process's open-file limit to what ``max_peers`` peers need, if allowed."""
        needed = fds_needed(self.config.max_peers)
        limit = raise_fd_limit(needed)
        if limit < needed:
            _log.warning("open-file limit too low for max_peers", node=self.name, limit=limit,
                         needed=needed, max_peers=self.config.max_peers,
                         allowed="raise the hard RLIMIT_NOFILE (ulimit -Hn) or lower max_peers")

    def stop(self) -> None:
        """Stop the node, as an Erlang node whose distribution goes down. Idempotent.

        In this order: the sockets close (peers see the connection end and report
        ``noconnection`` for our actors); pending asks fail with :class:`NodeDownError`;
        local watchers of remote actors get ``Down(noconnection)`` and local actors linked to
        remote ones the ``noconnection`` exit signal (so a non-trapping linked actor stops);
        monitors peers held on local actors are dropped; subscribers get ``NodeDown(peer,
        "node_stopped")`` for every peer that was up; queued callbacks run, then the notifier
        ends (callbacks delivered later run on the delivering thread).

        Local actors are not stopped, and local monitors and links between them still work:
        those actors belong to whoever started them (the embedding service).

        A node whose I/O thread cannot go on stops by itself in the same way, loudly (logged
        as an error), with reason ``"io_failed"`` instead of ``"node_stopped"``.
        """
        self._shut_down("node_stopped")

    def _io_failed(self, why: str) -> None:
        """The I/O thread cannot go on (it calls this, its sockets closed): stop loudly, as
        :meth:`stop` with reason ``io_failed``, rather than stay deaf. Stopping joins the I/O
        thread, so it runs on a thread of its own."""
        _log.error("node stops: its I/O thread failed", node=self.name, why=why)
        threading.Thread(target=self._shut_down, args=("io_failed",), daemon=True,
                         name=f"wind-fail-{self.name}").start()

    def _shut_down(self, reason: str) -> None:
        with self._stop_lock:  # two stops at once would stop ZAP and the context twice
            if self._stopped:
                return
            self._stopped = True
        up = [peer for peer, status in self.peers().items() if status == "up"]
        if self.transport is not None:
            self.transport.stop()
        error = NodeDownError(f"node {self.name} stopped", node=self.name, reason=reason)
        for entry in self.pending.take_all():
            fail(entry, error)
        self.watches.node_stopped()
        for peer in up:
            self.publish(NodeDown(peer, reason))
        self._teardown()
        _log.info("node stopped", node=self.name, reason=reason)

    def _teardown(self) -> None:
        # again after _shut_down's stop (harmless: idempotent), for whether the sockets are free
        quiet = self.transport.stop() if self.transport is not None else True
        if self._zap is not None:
            self._zap.stop()  # before the context: the ZAP thread uses sockets of it
        self.notifier.stop()
        if quiet:
            self._ctx.destroy(linger=0)
        else:
            # Destroying a context under a thread still inside a socket call aborts the whole
            # process (libzmq asserts); leaking this one context until exit is the safe choice.
            _LEFT_OPEN.append(self._ctx)
            _log.warning("node.context_left_open", node=self.name,
                         why="the I/O thread or a send did not finish within 5 s")

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- names and refs -----------------------------------------------------------------------

    def register(self, name: str, actor_ref: pykka.ActorRef[Any], *,
                 access: Access = OPEN) -> RemoteRef:
        """Register a local actor under ``name`` so ``name@NODE`` reaches it.

        Args:
            name: the name (no ``@``).
            actor_ref: a local actor.
            access: which remote roles may reach it beyond each message's own rule
                (``runtime.SYSTEM`` for Wind's own actors; default: any trusted peer).

        Returns:
            Its ref. Raises NodeError if the name is taken by a live actor or holds ``@``.
        """
        self.registry.register(name, actor_ref, access)
        return RemoteRef(name, self.name, self)

    def refuse(self, reason: str, **context: Any) -> None:
        """Count and log (rate-limited) a request an actor refused on authorization or content
        grounds, as the runtime counts its own drops (``stats()["counters"][reason]``)."""
        self.inbound.drop(reason, **context)

    def identity(self, peer: str) -> Identity:
        """Who ``peer`` is: its role and scope from the trust configuration.

        With CURVE, the folder its key is filed in, or the role it was vouched with (``_trust``);
        when insecure, ``[node] roles`` (names are then taken on trust, which is what insecure
        means). Unlisted: ``peer``.
        """
        return self.trusted_identity(peer) or Identity(peer, PEER)

    def trusted_identity(self, peer: str) -> Identity | None:
        """As :meth:`identity`, but None when CURVE is on and ``peer``'s key is not trusted (any
        more: vouched and since dropped, or its file removed) although it may still be connected."""
        policy = self._policy
        if policy is None:
            return self._insecure_roles.get(peer) or Identity(peer, PEER)
        cached = self._identities.get(peer)  # once per frame: no lock while the trust is unchanged
        if cached is not None and cached[0] == policy.generation:
            return cached[1]
        ident = policy.identity_of_name(peer)
        self._identities[peer] = (policy.generation, ident)
        return ident

    @property
    def trust(self) -> TrustPolicy | None:
        """The node's trust policy (filed and vouched keys), or None without CURVE."""
        return self._policy

    def unregister(self, name: str, actor_ref: pykka.ActorRef[Any] | None = None) -> bool:
        """Forget a name; returns whether it was registered.

        With ``actor_ref``, only if the name is still bound to that actor (an exiting actor
        must not unbind a successor that already took its name over)."""
        return self.registry.unregister(name, actor_ref)

    def whereis(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live local actor registered as ``name``, or None (dead entries are dropped)."""
        return self.registry.whereis(name)

    def ref(self, address: str) -> RemoteRef:
        """A ref to ``"name@node"`` (local or remote); nothing is checked until it is used."""
        name, node = split_address(address)
        return RemoteRef(name, node, self)

    def ref_of(self, actor_ref: pykka.ActorRef[Any]) -> RemoteRef:
        """A ref to a local actor that can travel in messages, registering it if needed."""
        name = self.registry.name_of(actor_ref)
        if name is not None:
            return RemoteRef(name, self.name, self)
        return self.register(f"$anon.{actor_ref.actor_urn}", actor_ref)

    def _bind_ref(self, name: str, node: str) -> RemoteRef:
        return RemoteRef(name, node, self)

    # -- peers ----------------------------------------------------------------------------------

    def connect(self, node_name: str, address: str | None = None, *, wait: bool = True,
                timeout: float = 5.0) -> None:
        """Connect to a peer (connections are also made on demand when a ref is used).

        Args:
            node_name: the peer's name; with CURVE its public key must be trusted (filed in
                ``keys_dir``, or vouched: ``trust.vouch``).
            address: its endpoint; may be omitted for configured or already known peers.
            wait: block until the peer answers.
            timeout: seconds to wait.

        Raises:
            NodeDownError: no address is known, or the peer did not answer in time.
            SecurityError: no trusted public key for the peer.
        """
        if address is not None:
            self._addresses[node_name] = address
        self._server_key(node_name)
        event = self._peer_events.setdefault(node_name, threading.Event())
        if self.membership.status(node_name) != "up":
            event.clear()
        self._want(node_name)
        if wait and not event.wait(timeout):
            raise NodeDownError(f"node {node_name} did not answer within {timeout} s at "
                                f"{self._addresses.get(node_name)}", node=node_name)

    def disconnect(self, node_name: str, reason: str = "disconnected") -> None:
        """Stop talking to a peer: as for a lost link (pending asks fail, monitors fire with
        ``noconnection``, subscribers get ``NodeDown(name, reason)`` if it was up), and then it is
        no longer tracked or pinged and its socket closes. A configured peer (``[node.peers]``)
        is kept. A later message to it, or a frame from it while it is trusted, connects anew.
        """
        if node_name in self.config.peers or self.transport is None:
            return

        def drop() -> None:  # I/O thread: the membership and the sockets are its own
            self.inbound.on_link_lost(node_name, reason)
            self.membership.forget(node_name)
            self.transport.reset_peer(node_name)  # type: ignore[union-attr]

        self.transport.call_soon(drop)

    def _want(self, peer: str) -> None:
        if peer not in self._addresses:
            raise NodeDownError(f"address of node {peer!r} is unknown; give it to connect() or "
                                "list it in [node.peers]", node=peer)
        self.transport.call_soon(  # type: ignore[union-attr]
            lambda: self.inbound.want(peer))

    def _server_key(self, peer: str) -> bytes | None:
        if self.config.insecure:
            return None
        # the policy knows vouched keys too (probe peers have no file); the folder is read
        # directly as well, so a key copied in a moment ago is found before the next reload
        key = self._policy.public_key(peer) if self._policy is not None else None
        return key if key is not None else public_key_of(peer, self.config.keys_dir)  # type: ignore[arg-type]

    def knows(self, peer: str) -> bool:
        """Whether an address is known for ``peer``."""
        return peer in self._addresses

    def resolve(self, peer: str) -> tuple[str, bytes | None] | None:
        """Address and CURVE server key of ``peer``, or None if unknown (I/O thread)."""
        address = self._addresses.get(peer)
        if address is None:
            return None
        try:
            return address, self._server_key(peer)
        except NodeError as exc:
            _log.warning("cannot connect to peer", node=self.name, peer=peer, error=str(exc))
            return None

    def learn_address(self, peer: str, address: str) -> None:
        """Remember where a peer that reached us listens (so we can answer it)."""
        if address and self._addresses.get(peer) != address:
            known = peer in self._addresses
            self._addresses[peer] = address
            if known and self.transport is not None:
                # A new incarnation at a new address (a restarted agent, a new client process):
                # the old outbound socket would keep dialing the dead one and it never hears us.
                self.transport.reset_peer(peer)

    def subscribe(self, callback: Callable[[NodeUp | NodeDown], Any]) -> Callable[[], None]:
        """Call ``callback(NodeUp(name))`` / ``callback(NodeDown(name, reason))`` on the
        notifier thread for every membership change.

        Returns:
            A function that unsubscribes.
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def peers(self) -> dict[str, str]:
        """Known peers and their status: ``connecting``, ``up`` or ``down``."""
        return {name: p.status for name, p in list(self.membership.peers.items())}

    def peer_rtt_ms(self) -> dict[str, float]:
        """Heartbeat round-trip time per peer (smoothed), in milliseconds."""
        return self.membership.rtt_ms()

    def stats(self) -> dict[str, Any]:
        """Counters (drops by reason, deliveries, inbound connections cut...), peers, monitor
        and link counts, pending asks and CURVE rejections."""
        return {"node": self.name, "address": self.address, "counters": dict(self.counters),
                "peers": self.peers(), "rtt_ms": self.peer_rtt_ms(),
                "monitors": self.monitors.counts(), "links": self.watches.links(),
                "pending_asks": len(self.pending),
                "curve_rejected": self._zap.rejected if self._zap is not None else 0,
                "peers_held": len(self.membership.peers), "max_peers": self.config.max_peers,
                "sockets": self.transport.outbound_count() if self.transport is not None else 0}

    # -- fault injection --------------------------------------------------------------------------

    def partition(self, peer: str, direction: str = "both") -> None:
        """Fault injection: drop every frame to and from ``peer`` (heartbeats included) until
        :meth:`heal`; both sides then see the other go silent, as behind a real partition.

        Args:
            direction: ``"both"``; or a one-way cut, ``"in"`` (frames from ``peer`` dropped
                here) or ``"out"`` (frames to it dropped). Both sides declare each other lost
                either way: liveness needs answered pings.
        """
        if direction not in ("both", "in", "out"):
            raise ValueError(f"direction {direction!r}: use 'both', 'in' or 'out'")
        self._blocking(peer, True, direction)

    def heal(self, peer: str) -> None:
        """Undo :meth:`partition` (every direction); heartbeats resume and the nodes
        reconnect by themselves."""
        self._blocking(peer, False, "both")

    def _blocking(self, peer: str, blocked: bool, direction: str) -> None:
        done = threading.Event()
        transport = self.transport
        transport.call_soon(lambda: (transport.block(peer, blocked, direction), done.set()))  # type: ignore[union-attr]
        done.wait(5)

    # -- sending (any thread) -------------------------------------------------------------------

    def tell(self, ref: RemoteRef, message: Any) -> None:
        """Send ``message`` to ``ref`` (see :meth:`RemoteRef.tell`)."""
        if ref.node_name == self.name:
            actor = self.registry.whereis(ref.name)
            if actor is None:
                self.inbound.drop("unknown_target", peer=self.name, actor=ref.name)
                return
            try:
                actor.tell(message)
            except pykka.ActorDeadError:
                self.inbound.drop("unknown_target", peer=self.name, actor=ref.name)
            return
        body = self.codec.encode(message)
        if len(body) > self._body_limit or self._stopped or ref.node_name not in self._addresses:
            self._encode_for(ref, message)  # raises the precise error
            self._check_peer(ref.node_name)
        self.transport.send(ref.node_name, [_TELL, ref.name, body])  # type: ignore[union-attr]

    def ask_future(self, ref: RemoteRef, message: Any,
                   timeout: float | None = DEFAULT_ASK_TIMEOUT) -> pykka.Future[Any]:
        """Ask ``ref`` and return a future at once (see :meth:`RemoteRef.ask`)."""
        return self._ask(ref, message, timeout)[0]

    def ask(self, ref: RemoteRef, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Ask ``ref`` and wait (see :meth:`RemoteRef.ask`)."""
        future, corr = self._ask(ref, message, timeout)
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            if corr is not None and self.pending.take(corr) is None:
                return future.get(timeout=0)  # completed just now, by a reply or a failure
            raise AskTimeout(f"no reply from {ref.address} within {timeout} s",
                             node=ref.node_name, actor=ref.name) from None

    def _ask(self, ref: RemoteRef, message: Any,
             timeout: float | None) -> tuple[ReplyFuture, int | None]:
        if ref.node_name == self.name:
            future = ReplyFuture()
            actor = self.registry.whereis(ref.name)
            if actor is None:
                fail(future, NoSuchActor(f"no actor {ref.name!r} on node {self.name}",
                                         node=self.name, actor=ref.name))
            else:
                reply = LocalReply(future, ref.address, self.name, ref.name)
                actor.actor_inbox.put(Envelope(message, reply_to=reply))
            return future, None
        body = self._encode_for(ref, message)
        self._check_peer(ref.node_name)
        if self.membership.status(ref.node_name) == "down" or self.transport.is_blocked(ref.node_name):  # type: ignore[union-attr]
            # As Erlang's noconnection: the link is known broken (or cut by partition()), so
            # the ask fails now rather than being dropped on the way and waiting out its
            # timeout. Tells to a down peer are dropped (at most once); the next heartbeat
            # answer brings the peer back up.
            raise NodeDownError(f"node {ref.node_name} is down; {ref.address} was not asked",
                                node=ref.node_name, actor=ref.name)
        future = ReplyFuture(ref.node_name, float("inf") if timeout is None
                             else time.monotonic() + timeout)
        corr = self.pending.add(future)
        self.transport.send_now(ref.node_name, [_ASK, ref.name, corr, body])  # type: ignore[union-attr]
        return future, corr

    def _encode_for(self, ref: RemoteRef, message: Any) -> bytes:
        body = self.codec.encode(message)
        if len(body) > self._body_limit:
            # Never dropped silently: the caller gets the error, and the log says what to do.
            self.counters["oversized_sent"] += 1
            _log.warning("node.message_too_large", node=self.name, to=ref.address,
                         kind=type(message).__name__, bytes=len(body),
                         max_frame_bytes=self.config.max_frame_bytes,
                         fix="send it in chunks or pages (large requests must be cut by their "
                             "sender), or raise [node] max_frame_bytes on both nodes")
            raise WireError(f"message {type(message).__name__} of {len(body)} bytes to {ref.address} "
                            f"exceeds max_frame_bytes={self.config.max_frame_bytes}: send it in chunks "
                            "or raise max_frame_bytes", reason="oversized", node=ref.node_name)
        return body

    def _check_peer(self, peer: str) -> None:
        if self._stopped:
            raise NodeDownError(f"node {self.name} is stopped", node=self.name)
        if peer not in self._addresses:
            raise NodeDownError(f"address of node {peer!r} is unknown; connect() to it or list "
                                "it in [node.peers]", node=peer)

    # -- monitors and links ---------------------------------------------------------------------

    def monitor(self, ref: RemoteRef | pykka.ActorRef[Any], watcher: Any) -> str:
        """Watch an actor (local or remote) until it exits, once.

        Args:
            ref: a ref from :meth:`ref` or a message, or a local ``pykka.ActorRef``.
            watcher: an ActorRef (gets ``supervisors.Down`` by tell) or a callable(Down) run on
                the notifier thread (remote targets) or where the target ended (local ones).

        Returns:
            The monitor id. Reasons: the real exit reason; ``"noproc"`` when nothing is
            registered under that name; ``"noconnection"`` when the link to its node is lost
            or this node stops (the actor may still be alive behind a partition). Remote
            exceptions arrive as :class:`~wind_actors.errors.ActorError`.
        """
        return self.watches.monitor(ref, watcher)

    def demonitor(self, monitor_id: str) -> bool:
        """Cancel a monitor made by :meth:`monitor`; returns whether it was active."""
        return self.watches.demonitor(monitor_id)

    def link(self, local_ref: RemoteRef | pykka.ActorRef[Any], remote_ref: RemoteRef) -> None:
        """Link a local actor with another (possibly remote) one, both ways; idempotent.

        When either exits the other gets the exit signal (supervisors' rules: an ``Exit``
        message when trapping exits, else it stops unless the reason is ``"normal"``); a lost
        node link, or this node stopping, gives ``"noconnection"``.

        Raises:
            NodeError: ``local_ref`` is not a live local actor.
        """
        self.watches.link(local_ref, remote_ref)

    def unlink(self, local_ref: RemoteRef | pykka.ActorRef[Any], remote_ref: RemoteRef) -> None:
        """Remove the link between a local actor and another (possibly remote) one, both ways.

        Neither end gets an exit signal from that link afterwards. Unlinking actors that are
        not linked does nothing (as ``erlang:unlink/1``).

        Raises:
            NodeError: ``local_ref`` is not a live local actor.
        """
        self.watches.unlink(local_ref, remote_ref)

    # -- used by Inbound (I/O thread) and the watches --------------------------------------------

    def deliver(self, watcher: Any, event: Any) -> None:
        """Hand a Down (or NodeUp/NodeDown) to an ActorRef or, via the notifier, a callable."""
        if isinstance(watcher, pykka.ActorRef):
            try:
                watcher.tell(event)
            except pykka.ActorDeadError:
                pass
        else:
            self.notifier.post(watcher, event)

    def publish(self, event: NodeUp | NodeDown) -> None:
        """Tell subscribers about a membership change and wake connect() waiters."""
        _log.info("nodeup" if isinstance(event, NodeUp) else "nodedown", node=self.name,
                  peer=event.name, reason=getattr(event, "reason", None))
        for callback in list(self._subscribers):
            self.notifier.post(callback, event)
        # after the subscribers: a connect() waiter may subscribe as soon as it wakes
        if isinstance(event, NodeUp):
            self._peer_events.setdefault(event.name, threading.Event()).set()
        else:
            ev = self._peer_events.get(event.name)
            if ev is not None:
                ev.clear()
