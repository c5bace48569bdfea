"""Controller: the controller's supervision tree on a node, and ``run_controller``.

The tree (``one_for_all``: if the controller actor fails, the application actors restart with
it and everything is rebuilt from the store)::

    controller
    ├── apps        simple_one_for_one of AppActor (transient: an undeployed app ends normally)
    └── controller  ControllerActor (registered as ``controller``)
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import structlog

from supervisors import ChildSpec, SupFlags, start_supervisor
from wind_actors.agent._agent import _serve
from wind_actors.agent._ticker import Ticker
from wind_actors.config import ControllerConfig, load_config
from wind_actors.errors import ConfigError
from wind_actors.protocol import CONTROLLER_ACTOR
from wind_actors.runtime import SYSTEM
from wind_actors.services import Store, Tenants

from ._app import AppActor
from ._controller import ControllerActor, _Tick
from ._overlay import start_planner
from ._removed import RemovedSites

__all__ = ["Controller", "run_controller"]

_log = structlog.get_logger("wind.controller")


class Controller:
    """A running controller on a node. Use :meth:`start`; stop with :meth:`stop`.

    Attributes:
        node: its node.
        store: the desired-state store.
        supervisor: the root supervisor's ref.
        removed_sites: the removed sites (``wind sites remove``), shared by the controller actor
            and the overlay planner.
    """

    def __init__(self, node: Any, store: Store, supervisor: Any, ticker: Ticker,
                 removed_sites: RemovedSites | None = None) -> None:
        self.node = node
        self.store = store
        self.removed_sites = removed_sites if removed_sites is not None else RemovedSites(store)
        self.supervisor = supervisor
        self._ticker = ticker

    @classmethod
    def start(cls, node: Any, config: ControllerConfig) -> Controller:
        """Open the store, restore every application and start serving requests.

        Args:
            node: a started node.
            config: the ``[controller]`` section.

        Returns:
            The running controller.
        """
        store = Store(config.store)
        tenants = Tenants(config.tenants)
        removed = RemovedSites(store)
        holder: dict[str, Any] = {}

        def start_apps() -> pykka.ActorRef[Any]:
            template = ChildSpec(id="app", start=lambda tenant, app: AppActor.start(node, store, tenant, app),
                                 restart="transient", shutdown=30.0)
            holder["apps"] = start_supervisor(SupFlags("simple_one_for_one", intensity=20, period=10.0),
                                              [template], name="apps")
            return holder["apps"]

        def start_controller() -> pykka.ActorRef[Any]:
            ref = ControllerActor.start(node, store, tenants, holder["apps"],
                                        site_timeout=config.site_timeout, removed=removed,
                                        lost_site_grace=config.lost_site_grace,
                                        reconcile_interval=config.reconcile_interval)
            node.register(CONTROLLER_ACTOR, ref, access=SYSTEM)
            holder["controller"] = ref
            return ref

        sup = start_supervisor(SupFlags("one_for_all", intensity=5, period=30.0), [
            ChildSpec(id="apps", start=start_apps, type="supervisor"),
            ChildSpec(id="controller", start=start_controller, shutdown=30.0),
            ChildSpec(id="overlay", start=lambda: start_planner(node, store, removed=removed,
                                                                resync_interval=config.reconcile_interval),
                      shutdown=30.0),
        ], name="controller")
        ticker = _RefTicker(holder, config.tick)
        _log.info("controller.serving", node=node.name, store=config.store, tenants=len(config.tenants))
        return cls(node, store, sup, ticker, removed)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop the tree and close the store (VMs keep running; a new controller adopts them)."""
        self._ticker.stop()
        try:
            self.supervisor.stop(timeout=60)
        except pykka.ActorDeadError:
            pass
        self.store.close()


class _RefTicker:
    """Ticks whichever controller actor is current (it changes when the tree restarts it)."""

    def __init__(self, holder: dict[str, Any], interval: float) -> None:
        self._holder = holder
        self._interval = interval
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="wind-controller-tick", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            ref = self._holder.get("controller")
            if ref is not None:
                try:
                    ref.tell(_Tick())
                except pykka.ActorDeadError:
                    pass

    def stop(self) -> None:
        self._stop.set()


def run_controller(config_path: str, *, ready: threading.Event | None = None,
                   stop: threading.Event | None = None) -> int:
    """Run a controller until SIGTERM/SIGINT: ``wind controller --config FILE``.

    Returns:
        The process exit code.
    """
    config = load_config(config_path)
    if config.controller is None or config.node is None:
        raise ConfigError(f"{config_path} needs [node] and [controller] sections to run a controller",
                          source=str(config_path))
    return _serve(config.node, lambda node: Controller.start(node, config.controller), ready, stop)
