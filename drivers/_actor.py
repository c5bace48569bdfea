"""DriverActor: the supervised actor that owns one Driver (one per endpoint)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka
import structlog
from supervisors import Backoff, ChildSpec, WatchedActor, backoff_delay

from ._capabilities import Capabilities
from ._capacity import Capacity
from ._driver import Driver
from ._events import Inventory, VMEvent
from ._hub import Subscriber, Subscribers
from ._info import VMInfo
from ._registry import create_driver
from ._spec import NicSpec, VMSpec
from .errors import ConnectionLost, DriverError, VMNotFound

__all__ = ["DriverActor", "start_driver_actor", "driver_actor_spec", "driver_factory", "RECONNECT_BACKOFF"]

T = TypeVar("T")
DriverFactory = Callable[[], Driver]

#: Default pause between connect attempts while (re)starting.
RECONNECT_BACKOFF = Backoff(initial=0.05, maximum=2.0, multiplier=2.0, jitter=0.2)

_log = structlog.get_logger("wind.drivers.actor")


@dataclass(frozen=True)
class _Lost:
    """Told to the actor by the backend's thread when the connection drops."""

    error: ConnectionLost


class _Demand:
    """Told to the actor when its subscribers went from none to some, or back."""


def driver_factory(kind: str, /, **config: Any) -> DriverFactory:
    """A factory building a fresh driver from the registry on every (re)start.

    Args:
        kind: registry name (``"sim"``, ``"libvirt"``, ``"libcloud"`` or a plug-in's).
        **config: the driver's keyword configuration.
    """
    return lambda: create_driver(kind, **config)


class DriverActor(WatchedActor):
    """Owns one :class:`Driver`; every call to the endpoint runs on this actor's thread.

    Use it through a proxy: ``ref.proxy().define(spec).get()``. Each Driver
    operation is a method here with the same signature, raising the same
    :mod:`drivers.errors`.

    Lifecycle:

    - ``on_start`` (actor thread) builds a driver with the factory and
      connects, retrying ``connect_attempts`` times with ``backoff`` on
      recoverable errors; if it still fails the actor fails to start (its
      supervisor retries per its intensity). Once connected it bumps the
      subscribers' generation and sends each subscriber a fresh
      :class:`Inventory`, so nothing missed while disconnected goes unseen.
    - A call that raises :class:`ConnectionLost` returns that error to the
      caller *and* stops the actor with it as the exit reason (abnormal), so
      its supervisor restarts it; a drop noticed by the backend while idle
      (``Driver.watch_connection``) does the same through a message.
    - ``on_stop``/``on_failure`` (actor thread) close the driver.

    Events: each :class:`VMEvent` goes to every subscriber (ActorRefs by
    ``tell``; callables on the driver's event thread) straight from the
    driver's event thread, so a long call on this actor never delays them.
    The actor subscribes to its driver's events only while it has
    subscribers itself (a backend may charge for watching: libvirt does);
    when the first one arrives through :meth:`subscribe` it starts
    watching before taking the inventory it returns, and when one is added
    to the :class:`Subscribers` directly, it starts watching once it has
    handled the notice and then sends every subscriber a fresh inventory, so
    nothing between the two goes unseen.

    A backend call that hangs blocks only this actor (its thread is a daemon
    thread, so it never keeps the process alive).

    Args:
        factory: builds a new, unconnected driver (see :func:`driver_factory`).
        subscribers: the endpoint's :class:`Subscribers`, shared by every
            incarnation of this actor (default: a private one).
        connect_attempts: connect tries per start.
        backoff: pause between tries.
    """

    use_daemon_thread = True

    def __init__(
        self,
        factory: DriverFactory,
        *,
        subscribers: Subscribers | None = None,
        connect_attempts: int = 5,
        backoff: Backoff = RECONNECT_BACKOFF,
    ) -> None:
        super().__init__()
        self._factory = factory
        self.subscribers = subscribers if subscribers is not None else Subscribers()
        self._attempts = max(1, connect_attempts)
        self._backoff = backoff
        self._driver: Driver | None = None
        self._unsubscribe: Callable[[], None] | None = None  # set while forwarding the driver's events
        self._rng = random.Random()

    # --- hooks ------------------------------------------------------------------

    def on_start(self) -> None:
        """Actor thread: build, connect (with backoff), subscribe, send fresh inventory.

        Raises:
            DriverError: could not connect after every attempt (the actor fails to start).
        """
        driver = self._factory()
        self._driver = driver
        self._connect_with_backoff(driver)
        try:
            self.subscribers.listen(self._on_demand)
            if len(self.subscribers):
                self._unsubscribe = driver.subscribe(self._forward)
            driver.watch_connection(self._on_lost)
            generation = self.subscribers.next_generation()
            inventory = self._inventory(generation)
        except BaseException:
            self._teardown()  # on_stop/on_failure do not run when on_start fails
            raise
        _log.info("driver.connected", driver=driver.name, kind=driver.kind, generation=generation,
                  vms=len(inventory.vms))
        self.subscribers.send(inventory)

    def _connect_with_backoff(self, driver: Driver) -> None:
        for attempt in range(self._attempts):
            try:
                driver.connect()
                return
            except DriverError as exc:
                last = attempt == self._attempts - 1
                _log.warning("driver.connect_failed", driver=driver.name, attempt=attempt + 1,
                             error=str(exc), recoverable=exc.recoverable, giving_up=last or not exc.recoverable)
                if last or not exc.recoverable:
                    driver.close()
                    raise
                # Backoff between attempts: an Event that nobody sets is an interruptible sleep.
                threading.Event().wait(backoff_delay(self._backoff, attempt, self._rng))

    def on_stop(self) -> None:
        """Actor thread: unsubscribe and close the driver."""
        self._teardown()

    def on_failure(self, *exc_info: Any) -> None:
        """Actor thread, after a crash while handling a tell: close the driver."""
        self._teardown()

    def _teardown(self) -> None:
        self.subscribers.unlisten(self._on_demand)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._driver is not None:
            self._driver.close()

    def on_receive(self, message: Any) -> Any:
        """Actor thread: a ``_Lost`` notice crashes the actor with its ConnectionLost."""
        if isinstance(message, _Lost):
            raise message.error
        if isinstance(message, _Demand):
            if self._forwarding(bool(len(self.subscribers))):
                self.subscribers.send(self._call(lambda d: self._inventory()))
            return None
        return super().on_receive(message)

    def _forwarding(self, wanted: bool) -> bool:
        """Start or stop forwarding the driver's events; True if it just started."""
        assert self._driver is not None
        if wanted and self._unsubscribe is None:
            self._unsubscribe = self._driver.subscribe(self._forward)
            return True
        if not wanted and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return False

    # --- event plumbing (backend threads) ------------------------------------------

    def _forward(self, event: VMEvent) -> None:
        self.subscribers.send(event)

    def _on_demand(self, _wanted: bool) -> None:
        # Any thread (whoever changed the subscribers): the actor thread owns
        # the driver, so it re-reads the subscribers there and acts on that.
        try:
            self.actor_ref.tell(_Demand())
        except pykka.ActorDeadError:
            pass  # the next incarnation looks at the subscribers in on_start

    def _on_lost(self, error: ConnectionLost) -> None:
        try:
            self.actor_ref.tell(_Lost(error))
        except pykka.ActorDeadError:
            pass  # already gone: nothing to restart from here

    # --- calls -----------------------------------------------------------------------

    def _call(self, fn: Callable[[Driver], T]) -> T:
        assert self._driver is not None, "on_start has not run"
        try:
            return fn(self._driver)
        except ConnectionLost as exc:
            # The caller gets the error; the actor dies with it so its supervisor
            # restarts it and it reconnects.
            self.stop_with(exc)
            raise

    def _inventory(self, generation: int | None = None) -> Inventory:
        assert self._driver is not None
        gen = self.subscribers.generation if generation is None else generation
        return Inventory(self._driver.name, tuple(self._driver.list()), self._driver.capacity(), gen)

    @property
    def driver_name(self) -> str | None:
        """The driver's (endpoint's) name (None before ``on_start``)."""
        return self._driver.name if self._driver is not None else None

    def describe(self) -> dict[str, Any]:
        """Kind, name and capabilities of the driver, as plain data."""
        return self._call(lambda d: d.describe())

    def capabilities(self) -> Capabilities:
        """The driver's capabilities."""
        return self._call(lambda d: d.capabilities)

    def subscribe(self, target: Subscriber) -> Inventory:
        """Subscribe an ActorRef or callable to this endpoint's events.

        The subscription survives restarts of this actor. The target is sent
        the current inventory at once, which is also returned.
        """
        self._forwarding(True)  # before the inventory: no event after it goes unseen
        inventory = self._call(lambda d: self._inventory())
        self.subscribers.add(target)
        self.subscribers.send(inventory, only=target)
        return inventory

    def unsubscribe(self, target: Subscriber) -> bool:
        """Stop sending events to ``target``; returns whether it was subscribed."""
        return self.subscribers.remove(target)

    def inventory(self) -> Inventory:
        """A fresh inventory (VMs and capacity)."""
        return self._call(lambda d: self._inventory())

    def define(self, spec: VMSpec) -> VMInfo:
        """See :meth:`Driver.define`."""
        return self._call(lambda d: d.define(spec))

    def start_vm(self, name: str) -> None:
        """See :meth:`Driver.start` (named ``start_vm``: ``start`` is Pykka's class method)."""
        return self._call(lambda d: d.start(name))

    def create(self, spec: VMSpec) -> VMInfo | None:
        """Define and start a VM, and return its info (None if it is gone again already): one
        message for what a deploy does to every VM (three round trips to this actor otherwise).

        Raises:
            DriverError: as :meth:`Driver.define` or :meth:`Driver.start` (a VM defined but not
                started stays defined, as after the two calls one by one).
        """
        def create(d: Driver) -> VMInfo | None:
            d.define(spec)
            d.start(spec.name)
            return _info_or_none(d, spec.name)

        return self._call(create)

    def start_and_info(self, name: str) -> VMInfo | None:
        """Start a defined VM and return its info, or None if it is gone again already (one
        message instead of two)."""
        def start(d: Driver) -> VMInfo | None:
            d.start(name)
            return _info_or_none(d, name)

        return self._call(start)

    def shutdown(self, name: str) -> None:
        """See :meth:`Driver.shutdown`."""
        return self._call(lambda d: d.shutdown(name))

    def destroy(self, name: str) -> None:
        """See :meth:`Driver.destroy`."""
        return self._call(lambda d: d.destroy(name))

    def suspend(self, name: str) -> None:
        """See :meth:`Driver.suspend`."""
        return self._call(lambda d: d.suspend(name))

    def resume(self, name: str) -> None:
        """See :meth:`Driver.resume`."""
        return self._call(lambda d: d.resume(name))

    def reboot(self, name: str) -> None:
        """See :meth:`Driver.reboot`."""
        return self._call(lambda d: d.reboot(name))

    def undefine(self, name: str) -> None:
        """See :meth:`Driver.undefine`."""
        return self._call(lambda d: d.undefine(name))

    def list(self) -> list[VMInfo]:
        """See :meth:`Driver.list`."""
        return self._call(lambda d: d.list())

    def info(self, name: str) -> VMInfo:
        """See :meth:`Driver.info`."""
        return self._call(lambda d: d.info(name))

    def find(self, name: str) -> VMInfo | None:
        """:meth:`Driver.info`, or None when there is no such VM (no exception to build, send
        and raise: a deploy asks this of every new VM)."""
        return self._call(lambda d: _info_or_none(d, name))

    def capacity(self) -> Capacity:
        """See :meth:`Driver.capacity`."""
        return self._call(lambda d: d.capacity())

    def migrate(self, name: str, dest_host: str) -> VMInfo:
        """See :meth:`Driver.migrate`."""
        return self._call(lambda d: d.migrate(name, dest_host))

    def snapshot(self, name: str, tag: str) -> None:
        """See :meth:`Driver.snapshot`."""
        return self._call(lambda d: d.snapshot(name, tag))

    def console_log(self, name: str) -> str:
        """See :meth:`Driver.console_log`."""
        return self._call(lambda d: d.console_log(name))

    def attach_nic(self, name: str, nic: NicSpec) -> VMInfo:
        """See :meth:`Driver.attach_nic`."""
        return self._call(lambda d: d.attach_nic(name, nic))


def start_driver_actor(factory: DriverFactory, **options: Any) -> pykka.ActorRef[DriverActor]:
    """Start a DriverActor and wait until it is connected.

    Args:
        factory: builds the driver (see :func:`driver_factory`).
        **options: DriverActor keyword options.

    Returns:
        The running actor's ref.

    Raises:
        supervisors.StartError: it could not connect (``.reason`` is the DriverError).
    """
    return DriverActor.start_sync(factory, **options)


def driver_actor_spec(
    id: Any,
    factory: DriverFactory,
    *,
    subscribers: Subscribers | None = None,
    restart: str = "permanent",
    backoff: Backoff | None = None,
    **options: Any,
) -> ChildSpec:
    """A ChildSpec for a supervised DriverActor; its subscriptions survive restarts.

    Args:
        id: the child id.
        factory: builds the driver on every (re)start.
        subscribers: shared :class:`Subscribers` (created if not given).
        restart: the child's restart type.
        backoff: the supervisor's backoff between restarts of this child.
        **options: DriverActor keyword options.
    """
    hub = subscribers if subscribers is not None else Subscribers()
    return ChildSpec(id=id, start=lambda: DriverActor.start(factory, subscribers=hub, **options),
                     restart=restart, backoff=backoff)


def _info_or_none(driver: Driver, name: str) -> VMInfo | None:
    try:
        return driver.info(name)
    except VMNotFound:  # removed between the start and the look (another actor, a crash)
        return None
