"""Agent: one site's supervision tree on a node, and ``run_agent`` for ``wind agent``.

The tree (``rest_for_one``, so a restarted child also restarts everything started after it)::

    agent.SITE
    ├── driver          DriverActor (permanent; reconnects with backoff)
    ├── vms.always      simple_one_for_one of VMActor, permanent   (restart: always)
    ├── vms.on-failure  simple_one_for_one of VMActor, transient   (restart: on-failure)
    ├── vms.never       simple_one_for_one of VMActor, temporary   (restart: never)
    └── site            SiteActor (adopts the site's Wind VMs whenever it starts)
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pykka
import structlog

import supervisors
from drivers import DriverActor
from drivers._actor import driver_factory
from drivers._hub import Subscribers
from supervisors import Backoff, ChildSpec, SupFlags, start_supervisor
from wind_actors.affinity import pin_node
from wind_actors.config import AgentConfig, NodeConfig, load_config
from wind_actors.errors import ConfigError

from ._context import SiteContext
from ._overlay import start_overlay_actor
from ._policy import RESTART_TYPES
from ._site import SiteActor
from ._vm import VMActor

__all__ = ["Agent", "run_agent"]

_log = structlog.get_logger("wind.agent")

#: Pause between restarts of one VM actor (grows while it keeps failing).
VM_BACKOFF = Backoff(initial=0.05, maximum=5.0, multiplier=2.0, jitter=0.2, reset_after=10.0)


class Agent:
    """A running agent: the site's tree on a node.

    Use :meth:`start`; stop with :meth:`stop`.

    Attributes:
        node: the node it runs on.
        config: its ``[agent]`` section.
        ctx: the shared :class:`SiteContext`.
        supervisor: the ref of the tree's root supervisor.
    """

    def __init__(self, node: Any, config: AgentConfig, ctx: SiteContext, supervisor: Any) -> None:
        self.node = node
        self.config = config
        self.ctx = ctx
        self.supervisor = supervisor

    @classmethod
    def start(cls, node: Any, config: AgentConfig) -> Agent:
        """Start the site's supervision tree on ``node``.

        Args:
            node: a started :class:`~wind_actors.runtime.Node`.
            config: the ``[agent]`` section.

        Returns:
            The running agent.

        Raises:
            supervisors.StartError: the driver could not connect, or the site actor could not
                read the inventory.
        """
        ctx = SiteContext(node, config.site, config.driver, config.driver_config())
        hub = Subscribers()
        hub.add(ctx.route)
        factory = driver_factory(config.driver, **ctx.driver_options)
        started_at = time.time()
        vm_flags = SupFlags(strategy="simple_one_for_one", intensity=config.vm_restart_intensity,
                            period=config.vm_restart_period)

        def vm_sup(policy: str) -> ChildSpec:
            template = ChildSpec(id="vm", start=lambda spec, restart: VMActor.start(ctx, spec, restart),
                                 restart=RESTART_TYPES[policy], shutdown=10.0, backoff=VM_BACKOFF)

            def start() -> pykka.ActorRef[Any]:
                ref = start_supervisor(vm_flags, [template], name=f"vms.{policy}@{config.site}")
                ctx.sups[policy] = ref
                return ref

            return ChildSpec(id=f"vms.{policy}", start=start, type="supervisor")

        children = [
            ChildSpec(id="driver", start=lambda: ctx.set_driver(DriverActor.start(factory, subscribers=hub)),
                      shutdown=10.0),
            *(vm_sup(policy) for policy in RESTART_TYPES),
            ChildSpec(id="site", start=lambda: ctx.set_site(SiteActor.start(ctx, config, started_at)),
                      shutdown=10.0),
            # Last: its restart restarts nothing else; the kernel keeps the overlay meanwhile.
            ChildSpec(id="overlay", start=lambda: start_overlay_actor(
                node, config.site, config.controller, config.underlay_ip, config.overlay_netns, started_at),
                shutdown=10.0),
        ]
        sup = start_supervisor(SupFlags(strategy="rest_for_one", intensity=5, period=30.0), children,
                               name=f"agent.{config.site}")
        _log.info("agent.started", site=config.site, node=node.name, driver=config.driver)
        return cls(node, config, ctx, sup)

    def stop(self) -> None:
        """Stop the tree (VM actors first, the driver last). The VMs keep running: a new agent
        adopts them."""
        try:
            self.supervisor.stop(timeout=60)
        except pykka.ActorDeadError:
            pass


def run_agent(config_path: str, *, ready: threading.Event | None = None,
              stop: threading.Event | None = None) -> int:
    """Run an agent until SIGTERM/SIGINT (or ``stop`` is set): ``wind agent --config FILE``.

    Args:
        config_path: a TOML file with ``[node]`` and ``[agent]``.
        ready: set once the agent runs (for embedding).
        stop: set it to stop the agent (default: a new event set by the signals).

    Returns:
        The process exit code.
    """
    from wind_actors.runtime import Node

    config = load_config(config_path)
    if config.agent is None or config.node is None:
        raise ConfigError(f"{config_path} needs [node] and [agent] sections to run an agent",
                          source=str(config_path))
    node_config: NodeConfig = config.node
    if config.agent.controller not in node_config.peers:
        raise ConfigError(f"[agent] controller = {config.agent.controller!r} has no address; add it "
                          "to [node.peers]", section="agent", field="controller")
    return _serve(node_config, lambda node: Agent.start(node, config.agent), ready, stop)


def _serve(node_config: NodeConfig, start: Any, ready: threading.Event | None,
           stop: threading.Event | None) -> int:
    """Start a node and a service on it, wait for a signal, stop both (shared with the controller)."""
    from wind_actors.runtime import Node

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    pin_node(node_config)
    node = Node.start(node_config)
    gave_up: list[Any] = []
    try:
        service = start(node)
        supervisors.monitor(service.supervisor, lambda down: _root_down(down, stop, gave_up))
        print(f"ready {node.name} {node.address}", flush=True)
        if ready is not None:
            ready.set()
        stop.wait()
        if not gave_up:
            service.stop()
    finally:
        node.stop()
    return EXIT_ROOT_GAVE_UP if gave_up else 0


EXIT_ROOT_GAVE_UP = 70
"""Exit code of ``wind agent`` / ``wind controller`` when the root supervisor gave up (EX_SOFTWARE):
a process with no tree left must not live on deaf, so systemd or a harness restarts it."""


def _root_down(down: Any, stop: threading.Event, gave_up: list[Any]) -> None:
    """The root supervisor ended; unless we are stopping it, it gave up (intensity exceeded)."""
    if stop.is_set():
        return
    gave_up.append(down.reason)
    _log.error("root_supervisor.gave_up", reason=supervisors.describe(down.reason),
               exit_code=EXIT_ROOT_GAVE_UP, hint="restart intensity exceeded; see the crashes above")
    stop.set()
