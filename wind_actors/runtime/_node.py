"""Node: one OS process's actor system on the network (Erlang's distributed node).

Threads of a node: the caller's threads (any actor may tell/ask), one I/O thread owning the
sockets (``wind-io-NODE``, see ``_transport``), the notifier thread running callbacks
(``wind-notify-NODE``) and, with CURVE, pyzmq's ZAP thread.

Actor-side contract. A local actor registered with :meth:`Node.register` receives what remote
(or local) senders ``tell`` it in ``on_receive(message)``, on its own thread, in FIFO order
per sender. For an ``ask`` the return value of ``on_receive`` is the reply (it must be wire
data); an exception raised there is sent back and raised by the caller's ``ask`` as
:class:`~wind_actors.errors.ActorError` (the actor lives on, Pykka's contract). Messages carry
no implicit sender: put ``node.ref_of(self.actor_ref)`` (or a known ref) in the message when
the receiver should answer, ask or monitor you.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import zmq
from pykka._envelope import Envelope

import supervisors
from wind_actors.config import NodeConfig
from wind_actors.errors import (ActorError, AskTimeout, NodeDownError, NodeError, NoSuchActor,
                                WireError)
import structlog

from ._events import NodeDown, NodeUp, Notifier
from ._inbound import Inbound
from ._membership import Membership
from ._monitors import MonitorTable
from ._refs import DEFAULT_ASK_TIMEOUT, RemoteRef, split_address
from ._security import TrustPolicy, ZapAdapter, load_keypair, public_key_of
from ._transport import Transport
from ._wire import Codec, Kind

__all__ = ["Node"]

_log = structlog.get_logger("wind.runtime.node")


class _Pending:
    __slots__ = ("future", "peer", "deadline")

    def __init__(self, future: pykka.ThreadingFuture[Any], peer: str, deadline: float) -> None:
        self.future = future
        self.peer = peer
        self.deadline = deadline


class _LocalReply(pykka.ThreadingFuture[Any]):
    """Reply slot for a local ask: wraps the target's exception as ActorError (actor thread)."""

    def __init__(self, result: pykka.ThreadingFuture[Any], ref: RemoteRef, node: str) -> None:
        super().__init__()
        self._result = result
        self._ref = ref
        self._node = node

    def set(self, value: Any | None = None) -> None:
        self._result.set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        import sys
        exc = (exc_info or sys.exc_info())[1]
        if isinstance(exc, pykka.ActorDeadError):
            err: Exception = NoSuchActor(f"{self._ref.address} stopped before answering",
                                         node=self._node, actor=self._ref.name)
        else:
            err = _as_actor_error(exc, self._ref, self._node)
        self._result.set_exception((type(err), err, None))


def _as_actor_error(exc: BaseException | None, ref: RemoteRef, node: str) -> ActorError:
    if isinstance(exc, ActorError):
        return exc
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    err = ActorError(text, remote_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                     recoverable=getattr(exc, "recoverable", None), node=node, actor=ref.name)
    err.__cause__ = exc
    return err


class Node:
    """A named actor system reachable over ZeroMQ. Start it with :meth:`Node.start`."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.name = config.name
        self.counters: collections.Counter[str] = collections.Counter()
        self.codec = Codec(self._bind_ref, max_bytes=config.max_frame_bytes)
        self.membership = Membership(config.heartbeat_interval, config.heartbeat_misses)
        self.monitors = MonitorTable()
        self._registry: dict[str, pykka.ActorRef[Any]] = {}
        self._registry_lock = threading.Lock()
        self._addresses: dict[str, str] = dict(config.peers)
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._corr = itertools.count(1)
        self._subscribers: list[Callable[[Any], Any]] = []
        self._peer_events: dict[str, threading.Event] = {}
        self._stopped = False
        self._ctx = zmq.Context()
        self._zap: ZapAdapter | None = None
        self._keypair = None
        self._policy: TrustPolicy | None = None
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
        self.transport = Transport(node=self.name, bind=cfg.bind, context=self._ctx,
                                   keypair=self._keypair, max_frame_bytes=cfg.max_frame_bytes,
                                   handler=self.inbound, counters=self.counters)
        self.address = self.transport.address
        self.transport.start()
        for peer in cfg.peers:
            self._want(peer)
        _log.info("node started", node=self.name, address=self.address, curve=not cfg.insecure,
                  heartbeat_interval=cfg.heartbeat_interval, heartbeat_misses=cfg.heartbeat_misses)

    def stop(self) -> None:
        """Stop the node: pending asks fail with NodeDownError, sockets close. Idempotent.

        Local actors are not stopped; they belong to whoever started them.
        """
        if self._stopped:
            return
        self._stopped = True
        self._teardown()
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for entry in pending.values():
            _fail(entry.future, NodeDownError(f"node {self.name} stopped", node=self.name))
        _log.info("node stopped", node=self.name)

    def _teardown(self) -> None:
        if self.transport is not None:
            self.transport.stop()
        if self._zap is not None:
            self._zap.stop()
        self.notifier.stop()
        self._ctx.destroy(linger=0)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- names and refs -----------------------------------------------------------------------

    def register(self, name: str, actor_ref: pykka.ActorRef[Any]) -> RemoteRef:
        """Register a local actor under ``name`` so ``name@NODE`` reaches it.

        Returns:
            Its ref. Raises NodeError if the name is taken by a live actor or holds ``@``.
        """
        if not name or "@" in name:
            raise NodeError(f"actor name {name!r} is not allowed; use a non-empty name without @",
                            node=self.name)
        with self._registry_lock:
            current = self._registry.get(name)
            if current is not None and current is not actor_ref and current.is_alive():
                raise NodeError(f"name {name!r} is already registered on {self.name}",
                                node=self.name, actor=name)
            self._registry[name] = actor_ref
        return RemoteRef(name, self.name, self)

    def unregister(self, name: str) -> bool:
        """Forget a name; returns whether it was registered."""
        with self._registry_lock:
            return self._registry.pop(name, None) is not None

    def whereis(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live local actor registered as ``name``, or None (dead entries are dropped)."""
        actor = self._registry.get(name)
        if actor is None:
            return None
        if not actor.is_alive():
            with self._registry_lock:
                if self._registry.get(name) is actor:
                    del self._registry[name]
            return None
        return actor

    def ref(self, address: str) -> RemoteRef:
        """A ref to ``"name@node"`` (local or remote); nothing is checked until it is used."""
        name, node = split_address(address)
        return RemoteRef(name, node, self)

    def ref_of(self, actor_ref: pykka.ActorRef[Any]) -> RemoteRef:
        """A ref to a local actor that can travel in messages, registering it if needed."""
        with self._registry_lock:
            for name, registered in self._registry.items():
                if registered is actor_ref:
                    return RemoteRef(name, self.name, self)
        return self.register(f"$anon.{actor_ref.actor_urn}", actor_ref)

    def _bind_ref(self, name: str, node: str) -> RemoteRef:
        return RemoteRef(name, node, self)

    # -- peers ----------------------------------------------------------------------------------

    def connect(self, node_name: str, address: str | None = None, *, wait: bool = True,
                timeout: float = 5.0) -> None:
        """Connect to a peer (connections are also made on demand when a ref is used).

        Args:
            node_name: the peer's name; with CURVE its public key must be in ``keys_dir``.
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

    def _want(self, peer: str) -> None:
        if peer not in self._addresses:
            raise NodeDownError(f"address of node {peer!r} is unknown; give it to connect() or "
                                "list it in [node.peers]", node=peer)
        self.transport.call_soon(  # type: ignore[union-attr]
            lambda: self.inbound.want(peer))

    def _server_key(self, peer: str) -> bytes | None:
        if self.config.insecure:
            return None
        return public_key_of(peer, self.config.keys_dir)  # type: ignore[arg-type]

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
        """Counters (drops by reason, deliveries...), peers and monitor counts."""
        return {"node": self.name, "address": self.address, "counters": dict(self.counters),
                "peers": self.peers(), "rtt_ms": self.peer_rtt_ms(),
                "monitors": self.monitors.counts(), "pending_asks": len(self._pending),
                "curve_rejected": self._zap.rejected if self._zap is not None else 0}

    # -- fault injection --------------------------------------------------------------------------

    def partition(self, peer: str) -> None:
        """Fault injection: drop every frame to and from ``peer`` (heartbeats included) until
        :meth:`heal`; both sides then see the other go silent, as behind a real partition."""
        done = threading.Event()
        self.transport.call_soon(lambda: (self.transport.block(peer, True), done.set()))  # type: ignore[union-attr]
        done.wait(5)

    def heal(self, peer: str) -> None:
        """Undo :meth:`partition`; heartbeats resume and the nodes reconnect by themselves."""
        done = threading.Event()
        self.transport.call_soon(lambda: (self.transport.block(peer, False), done.set()))  # type: ignore[union-attr]
        done.wait(5)

    # -- sending (any thread) -------------------------------------------------------------------

    def tell(self, ref: RemoteRef, message: Any) -> None:
        """Send ``message`` to ``ref`` (see :meth:`RemoteRef.tell`)."""
        if ref.node_name == self.name:
            actor = self.whereis(ref.name)
            if actor is None:
                self.inbound.drop("unknown_target", peer=self.name, actor=ref.name)
                return
            try:
                actor.tell(message)
            except pykka.ActorDeadError:
                self.inbound.drop("unknown_target", peer=self.name, actor=ref.name)
            return
        body = self._encode_for(ref, message)
        self._check_peer(ref.node_name)
        self.transport.send(ref.node_name, [Kind.TELL, ref.name, body])  # type: ignore[union-attr]

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
            if corr is not None:
                with self._pending_lock:
                    entry = self._pending.pop(corr, None)
                if entry is None:  # completed just now, by a reply or a failure
                    return future.get(timeout=0)
            raise AskTimeout(f"no reply from {ref.address} within {timeout} s",
                             node=ref.node_name, actor=ref.name) from None

    def _ask(self, ref: RemoteRef, message: Any,
             timeout: float | None) -> tuple[pykka.ThreadingFuture[Any], int | None]:
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        if ref.node_name == self.name:
            actor = self.whereis(ref.name)
            if actor is None:
                _fail(future, NoSuchActor(f"no actor {ref.name!r} on node {self.name}",
                                          node=self.name, actor=ref.name))
            else:
                actor.actor_inbox.put(Envelope(message, reply_to=_LocalReply(future, ref, self.name)))
            return future, None
        body = self._encode_for(ref, message)
        self._check_peer(ref.node_name)
        corr = next(self._corr)
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        with self._pending_lock:
            self._pending[corr] = _Pending(future, ref.node_name, deadline)
        self.transport.send_now(ref.node_name, [Kind.ASK, ref.name, corr, body])  # type: ignore[union-attr]
        return future, corr

    def _encode_for(self, ref: RemoteRef, message: Any) -> bytes:
        body = self.codec.encode(message)
        if len(body) > self.config.max_frame_bytes - 512:
            raise WireError(f"message of {len(body)} bytes to {ref.address} exceeds "
                            f"max_frame_bytes={self.config.max_frame_bytes}", reason="oversized",
                            node=ref.node_name)
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
            (the actor may still be alive behind a partition). Remote exceptions arrive as
            :class:`~wind_actors.errors.ActorError`.
        """
        if isinstance(ref, pykka.ActorRef):
            return supervisors.monitor(ref, watcher)
        if ref.node_name == self.name:
            return self._monitor_local(ref, watcher)
        if ref.node_name not in self._addresses:
            public_id, _ = self.monitors.new_public_id()
            self.deliver(watcher, supervisors.Down(public_id, ref, supervisors.NOCONNECTION))
            return public_id
        entry = self.monitors.add_out(ref.node_name, ref, watcher)
        self.transport.send(ref.node_name, [Kind.MONITOR, entry.wire_id, ref.name])  # type: ignore[union-attr]
        return entry.public_id

    def _monitor_local(self, ref: RemoteRef, watcher: Any) -> str:
        public_id, _ = self.monitors.new_public_id()
        actor = self.whereis(ref.name)
        if actor is None:
            self.deliver(watcher, supervisors.Down(public_id, ref, supervisors.NOPROC))
            return public_id

        def relay(down: supervisors.Down) -> None:
            self.monitors.pop_local(public_id)
            self.deliver(watcher, supervisors.Down(public_id, ref, down.reason))

        self.monitors.add_local(public_id, supervisors.monitor(actor, relay))
        return public_id

    def demonitor(self, monitor_id: str) -> bool:
        """Cancel a monitor made by :meth:`monitor`; returns whether it was active."""
        local = self.monitors.pop_local(monitor_id)
        if local is not None:
            return supervisors.demonitor(local)
        if monitor_id.startswith("rmon-") and monitor_id[5:].isdigit():
            entry = self.monitors.pop_out(int(monitor_id[5:]))
            if entry is None:
                return False
            self.transport.send(entry.peer, [Kind.DEMONITOR, entry.wire_id])  # type: ignore[union-attr]
            return True
        return supervisors.demonitor(monitor_id)

    def link(self, local_ref: RemoteRef | pykka.ActorRef[Any], remote_ref: RemoteRef) -> None:
        """Link a local actor with another (possibly remote) one, both ways.

        When either exits the other gets the exit signal (supervisors' rules: an ``Exit``
        message when trapping exits, else it stops unless the reason is ``"normal"``); a lost
        node link gives ``"noconnection"``.
        """
        if isinstance(local_ref, RemoteRef):
            actor = self.whereis(local_ref.name) if local_ref.node_name == self.name else None
            if actor is None:
                raise NodeError(f"{local_ref.address} is not a live local actor; link needs one",
                                node=self.name)
        else:
            actor = local_ref
        if remote_ref.node_name == self.name:
            target = self.whereis(remote_ref.name)
            if target is None:
                exit_signal(actor, remote_ref, supervisors.NOPROC)
                return
            supervisors.link(actor, target)
            return
        mine = self.ref_of(actor)
        self.monitor(remote_ref, _ExitTo(actor, remote_ref))
        self.transport.send(remote_ref.node_name, [Kind.LINK, remote_ref.name, mine.name])  # type: ignore[union-attr]

    # -- used by Inbound (I/O thread) -------------------------------------------------------------

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

    def take_pending(self, corr: int) -> _Pending | None:
        """Remove and return the pending ask ``corr`` (its owner completes it)."""
        with self._pending_lock:
            return self._pending.pop(corr, None)

    def take_pending_where(self, predicate: Callable[[_Pending], bool]) -> list[_Pending]:
        """Remove and return every pending ask matching ``predicate``."""
        with self._pending_lock:
            corrs = [c for c, p in self._pending.items() if predicate(p)]
            return [self._pending.pop(c) for c in corrs]

    def learn_address(self, peer: str, address: str) -> None:
        """Remember where a peer that reached us listens (so we can answer it)."""
        if address and self._addresses.get(peer) != address:
            self._addresses[peer] = address


class _ExitTo:
    """Watcher turning a remote Down into an exit signal for a local linked actor."""

    def __init__(self, actor: pykka.ActorRef[Any], sender: RemoteRef) -> None:
        self.actor = actor
        self.sender = sender

    def __call__(self, down: supervisors.Down) -> None:
        exit_signal(self.actor, self.sender, down.reason)


def exit_signal(actor: pykka.ActorRef[Any], sender: Any, reason: Any) -> None:
    """Deliver a link exit signal to a local WatchedActor as if ``sender`` had exited."""
    from supervisors._watch import watch_of  # no public exit-signal API yet (see report)

    try:
        watch_of(actor, "link end").exit_signal(sender, reason)
    except Exception:  # noqa: BLE001 - not a WatchedActor: nothing can be signalled
        _log.warning("exit signal not delivered: target is not a WatchedActor",
                     actor=str(actor), reason=supervisors.describe(reason)
                     if hasattr(supervisors, "describe") else repr(reason))


def _fail(future: pykka.ThreadingFuture[Any], error: BaseException) -> None:
    try:
        future.set_exception((type(error), error, None))
    except Exception:  # noqa: BLE001 - queue.Full: already completed, nothing to do
        pass


def fail_future(future: pykka.ThreadingFuture[Any], error: BaseException) -> None:
    """Complete ``future`` with ``error`` unless it is already complete."""
    _fail(future, error)


def complete_future(future: pykka.ThreadingFuture[Any], value: Any) -> None:
    """Complete ``future`` with ``value`` unless it is already complete."""
    try:
        future.set(value)
    except Exception:  # noqa: BLE001 - queue.Full: already completed
        pass
