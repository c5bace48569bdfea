"""VMActor: owns one VM and keeps it in the state the controller wants.

When the hypervisor reports that the VM stopped without Wind asking (a crash, or a kill behind
its back) and the restart policy wants it back, the actor *fails* with
:class:`~wind_actors.errors.VMCrashed`; its supervisor (permanent for ``always``, transient for
``on-failure``, temporary for ``never``) restarts it, and the new incarnation brings the VM back
when it starts. When the policy says to leave it stopped, the actor stays, holding the VM's state
for reports, so nothing loops.

The new incarnation reads the VM's state from the driver, and a driver may report a VM destroyed
behind Wind's back as ``shutoff`` (libvirt does), as if it had powered off cleanly, which
``on-failure`` leaves alone. So the failing incarnation records how it classified the stop
(:class:`_Failures`) and its successor counts the VM as crashed (``_policy.stopped_state``).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from drivers import EventKind, VMEvent, VMSpec
from drivers.errors import DriverError, VMNotFound
from supervisors import PooledActor
from wind_actors.errors import VMCrashed
from wind_actors.protocol import vm_actor_name
from wind_actors.runtime import SYSTEM

from ._context import SiteContext, VMChanged
from ._policy import ACTIVE, classify_stop, converge_action, restart_wanted

__all__ = ["VMActor", "Teardown"]

_log = structlog.get_logger("wind.agent.vm")

#: Seconds to wait for one driver call (the driver actor serializes calls to the endpoint).
DRIVER_TIMEOUT = 60.0


@dataclass(frozen=True)
class _Converge:
    """Told to itself at start: bring the VM to the wanted state (off the supervisor's path)."""


@dataclass(frozen=True)
class Teardown:
    """Asked by the site actor before removing this VM: destroy and undefine it, expectedly."""


class _Failures:
    """How each VM's failed actor classified the stop it failed on, kept for its successor.

    A supervisor restarts a VM actor with the arguments it first started it with, so nothing
    carries the reason across; this does, per agent (keyed weakly by its :class:`SiteContext`,
    which outlives every VM actor and dies with the agent). Thread-safe: VM actors of one agent
    run on several pool workers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ctx: weakref.WeakKeyDictionary[SiteContext, dict[str, str]] = weakref.WeakKeyDictionary()

    def note(self, ctx: SiteContext, vm: str, state: str) -> None:
        """Record that ``vm``'s actor fails because its VM stopped in ``state`` unexpectedly."""
        with self._lock:
            self._by_ctx.setdefault(ctx, {})[vm] = state

    def get(self, ctx: SiteContext, vm: str) -> str | None:
        """Returns: the state recorded for ``vm``, or None."""
        with self._lock:
            return self._by_ctx.get(ctx, {}).get(vm)

    def forget(self, ctx: SiteContext, vm: str) -> None:
        """Drop ``vm``'s record (it was acted on, or the VM is removed)."""
        with self._lock:
            self._by_ctx.get(ctx, {}).pop(vm, None)


_FAILURES = _Failures()


class VMActor(PooledActor):
    """The actor of one VM (registered on its node as ``vm.NAME``).

    Args:
        ctx: the agent's shared :class:`SiteContext`.
        spec: the VM's ``VMSpec.as_dict()``.
        restart: ``always`` | ``on-failure`` | ``never``.

    Hooks run on a worker of the shared ``"blocking"`` actor pool, one message at a time. ``on_start`` only registers the actor and tells itself to
    converge, so a supervisor starting a thousand VM actors is never held up by the hypervisor;
    a recoverable driver error while converging crashes the actor (restarted with backoff), a
    permanent one (no capacity, invalid spec) leaves it holding state ``failed``.
    """

    # No thread per VM: VM actors share the "blocking" pool (their handlers wait on the driver
    # actor, which has its own thread, so they cannot deadlock the pool; see supervisors._pool).
    pool = "blocking"

    def __init__(self, ctx: SiteContext, spec: dict[str, Any], restart: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.spec = VMSpec.from_dict(spec)
        self.name = self.spec.name
        self.restart = restart
        self.state = "unknown"
        self.host: str | None = None
        self.detail = ""
        self.restarts = 0
        self._expect_stop = False

    # -- hooks --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.restarts = self.ctx.add_vm(self.name, self.actor_ref)
        self.ctx.node.register(vm_actor_name(self.name), self.actor_ref, access=SYSTEM)
        self.actor_ref.tell(_Converge())

    def on_stop(self) -> None:
        self._leave()

    def on_failure(self, *exc_info: Any) -> None:
        self._leave(restarting=True)

    def _leave(self, restarting: bool = False) -> None:
        self.ctx.drop_vm(self.name, self.actor_ref, restarting=restarting)
        self.ctx.node.unregister(vm_actor_name(self.name), self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, VMEvent):
            return self._on_event(message)
        if isinstance(message, _Converge):
            return self._converge()
        if isinstance(message, Teardown):
            return self._teardown()
        if message == "describe":
            return self.describe()
        return None

    # -- behaviour ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Returns: the VM as this actor knows it (plain data)."""
        return {"name": self.name, "state": self.state, "host": self.host, "detail": self.detail,
                "restarts": self.restarts, "restart": self.restart}

    def _report(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        self.ctx.vm_changed(VMChanged(self.name, state, self.host, detail, self.restarts))

    def _call(self, method: str, *args: Any) -> Any:
        """Call the driver actor; a dead driver actor is a recoverable failure of ours."""
        try:
            return getattr(self.ctx.driver(), method)(*args).get(timeout=DRIVER_TIMEOUT)
        except pykka.ActorDeadError as exc:
            raise VMCrashed(f"driver of site {self.ctx.site} is restarting", vm=self.name,
                            recoverable=True) from exc

    def _info(self) -> Any:
        return self._call("find", self.name)

    def _converge(self) -> None:
        # Only a restarted incarnation inherits a failure; a first one (a deploy, an adoption
        # after an agent restart) has only the driver's word for how its VM stopped.
        failed_as = _FAILURES.get(self.ctx, self.name) if self.restarts else None
        try:
            info = self._info()
            observed = info.state.value if info is not None else None
            action = converge_action(observed, self.restart, first=self.restarts == 0, failed_as=failed_as)
            if action == "define_start":
                info = self._call("create", self.spec)
            elif action == "start":
                info = self._call("start_and_info", self.name)
            self.host = info.host if info is not None else None
            state = info.state.value if info is not None else "missing"
        except DriverError as exc:
            if exc.recoverable:
                raise  # crash: the supervisor restarts us (with backoff) and we try again
            _log.error("vm.failed", vm=self.name, site=self.ctx.site, error=str(exc))
            self._report("failed", str(exc))
            return
        _FAILURES.forget(self.ctx, self.name)  # acted on; a later failure records itself again
        verb = {"define_start": "created", "start": "restarted", "watch": "adopted",
                "hold": "left stopped"}[action]
        _log.info(f"vm.{verb.replace(' ', '_')}", vm=self.name, site=self.ctx.site, state=state,
                  restarts=self.restarts)
        self._report(state, "" if action != "hold" else f"restart policy {self.restart}")

    def _on_event(self, event: VMEvent) -> None:
        kind = event.kind
        if event.host:
            self.host = event.host
        if kind in (EventKind.STARTED, EventKind.RESUMED, EventKind.MIGRATED):
            if self.state != "running":
                self._report("running", event.detail)
            return
        if kind == EventKind.SUSPENDED:
            self._report("paused", event.detail)
            return
        if kind not in (EventKind.STOPPED, EventKind.CRASHED, EventKind.REMOVED) or self._expect_stop:
            return
        # Events may be stale (emitted before our own start); trust the hypervisor's state now.
        info = self._info()
        if info is not None and info.state.value in ACTIVE:
            return
        state = classify_stop(kind.value, event.detail)
        _log.warning("vm.stopped_unexpectedly", vm=self.name, site=self.ctx.site, state=state,
                     detail=event.detail, restart=self.restart)
        self._report(state, event.detail or kind.value)
        if restart_wanted(self.restart, state):
            _FAILURES.note(self.ctx, self.name, state)  # the successor may find it only "shutoff"
            raise VMCrashed(f"VM {self.name} {state} ({event.detail or kind.value}) at site "
                            f"{self.ctx.site}; restart policy {self.restart} brings it back",
                            vm=self.name, site=self.ctx.site)

    def _teardown(self) -> dict[str, Any]:
        """Destroy (if active) and undefine the VM; events this causes are expected."""
        self._expect_stop = True
        info = self._info()
        if info is not None:
            if info.state.value in ACTIVE:
                self._call("destroy", self.name)
            try:
                self._call("undefine", self.name)
            except VMNotFound:
                pass
        self.ctx.drop_vm(self.name, self.actor_ref, forget=True)
        _FAILURES.forget(self.ctx, self.name)
        self._report("removed")
        return {"removed": self.name, "existed": info is not None}
