"""The Python API for services that embed Wind: a client connected to a controller.

Example::

    from wind_actors.client import Client

    with Client.from_config("client.toml") as wind:        # [node] + [client] sections
        result = wind.deploy("examples/apps/web.yaml")      # waits until every VM runs
        print(wind.status("web")["vms"])
        wind.undeploy("web")

Every call carries the tenant token of the config (or ``$WIND_TOKEN``). Errors come back as the
same classes the controller raised: ``DescriptorInvalid`` (``.problems``), ``NotSupportedYet``,
``PlacementFailed`` (``.explanation``), ``NotFound``, ``Unauthenticated``, ``SiteInUse``,
``InvalidPage``; anything else as
``ControllerError``. The client runs its own node; give each concurrently running client its own
node name (and key pair).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from wind_actors._paging import join_pages
from wind_actors.config import ClientConfig, NodeConfig, load_config
from wind_actors.errors import (ConfigError, ControllerError, DescriptorInvalid, InvalidPage, NotFound,
                                NotSupportedYet, PlacementFailed, SiteInUse, Unauthenticated, WindError,
                                Forbidden)
from wind_actors.protocol import (CONTROLLER_ACTOR, Deploy, GetOperation, KillInstance, RemoveSite, Sites,
                                  Status, Undeploy, is_error)

__all__ = ["Client", "Progress"]

Progress = Callable[[dict[str, Any]], None]
"""Called with each operation snapshot (``{"op", "kind", "state", "detail"}``) while waiting,
and with a snapshot of the same shape after each page of a long listing (``Client.sites``)."""

_POLL = 0.1

#: How a controller that has just (re)started refuses a deploy until the sites have reported
#: (recoverable; ``Client.deploy`` retries it with the same operation key).
POOL_NOT_KNOWN = "pool not known yet"


class _Explanation:
    """A placement explanation as it came over the wire (prints like the controller's)."""

    def __init__(self, message: str, data: Mapping[str, Any]) -> None:
        self._message = message
        self.data = dict(data)

    def __str__(self) -> str:
        return self._message

    def to_mapping(self) -> dict[str, Any]:
        return dict(self.data)


def raise_for(reply: Any) -> Any:
    """Raise the error in a controller reply, or return the reply.

    Raises:
        WindError: the matching subclass.
    """
    if not is_error(reply):
        return reply
    err = reply["error"]
    kind, text = err.get("type", "WindError"), err.get("message", "controller error")
    if kind == "DescriptorInvalid":
        from wind_actors.services import Problem
        raise DescriptorInvalid([Problem(p["path"], p["found"], p["allowed"]) for p in err.get("problems", ())])
    if kind == "NotSupportedYet":
        raise NotSupportedYet(err.get("features", ()))
    if kind == "PlacementFailed":
        raise PlacementFailed(_Explanation(text, err.get("explanation", {})))
    if kind == "NotFound":
        raise NotFound(text)
    if kind == "Unauthenticated":
        raise Unauthenticated(text)
    if kind == "SiteInUse":
        raise SiteInUse(text)
    if kind == "Forbidden":
        raise Forbidden(text)
    if kind == "InvalidPage":
        raise InvalidPage(text)
    raise ControllerError(text, error_type=kind, detail=err, recoverable=err.get("recoverable"))


class Client:
    """A connection to a controller, acting for one tenant.

    Args:
        node: a started node that can reach the controller (it is stopped by :meth:`close`
            when ``owns_node``).
        controller: the controller's node name.
        token: the tenant token; may be empty on an operator's node (its key is its credential),
            which then may only manage the pool (sites, remove_site, operation).
        timeout: seconds to wait for each answer.
        owns_node: stop ``node`` on :meth:`close`.
    """

    def __init__(self, node: Any, controller: str, token: str, *, timeout: float = 30.0,
                 owns_node: bool = False) -> None:
        self.node = node
        self.controller = controller
        self._token = token
        self.timeout = timeout
        self._owns_node = owns_node
        self._ref = node.ref(f"{CONTROLLER_ACTOR}@{controller}")

    @classmethod
    def from_config(cls, path: str | Path, *, token: str | None = None) -> Client:
        """Start a node from a config file's ``[node]`` and connect as its ``[client]`` says.

        Raises:
            ConfigError: a section is missing. NodeDownError: the controller does not answer.
        """
        config = load_config(path)
        if config.node is None or config.client is None:
            raise ConfigError(f"{path} needs [node] and [client] sections", source=str(path))
        return cls.connect(config.node, config.client, token=token)

    @classmethod
    def connect(cls, node_config: NodeConfig, client: ClientConfig, *, token: str | None = None) -> Client:
        """Start a node and connect to the controller named by ``client``."""
        from wind_actors.runtime import Node

        node = Node.start(node_config)
        try:
            node.connect(client.controller, timeout=client.timeout)
            return cls(node, client.controller, token or client.effective_token or "",
                       timeout=client.timeout, owns_node=True)
        except BaseException:
            node.stop()
            raise

    def close(self) -> None:
        """Stop the client's node if it owns it."""
        if self._owns_node:
            self.node.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, message: Any) -> Any:
        if not self._token and not isinstance(message, _OPERATOR_REQUESTS):
            raise ConfigError("no tenant token: set [client] token in the config or $WIND_TOKEN")
        return raise_for(self._ref.ask(message, timeout=self.timeout))

    # -- operations -------------------------------------------------------------------------------

    def deploy(self, descriptor: str | Path | Mapping[str, Any], *, wait: bool = True,
               progress: Progress | None = None, timeout: float = 300.0,
               op_key: str | None = None) -> dict[str, Any]:
        """Deploy an application (idempotent: the same descriptor again is ``unchanged``).

        Args:
            descriptor: a file path, YAML text, or the parsed mapping.
            wait: wait until every VM runs (or the operation fails).
            progress: called with each operation snapshot while waiting.
            timeout: seconds to wait.
            op_key: an idempotency key (default: a fresh one); retrying with it returns the same
                operation.

        Returns:
            ``{"op", "app", "state", "placement", "vms"}``, plus ``"operation"`` (the final
            snapshot) when waiting.
        """
        text = _descriptor_text(descriptor)
        message = Deploy(self._token, text, op_key or f"deploy-{uuid.uuid4().hex}")
        reply = self._ask_until_pool_known(message, time.monotonic() + timeout)
        if wait and reply.get("op"):
            reply["operation"] = self.wait(reply["op"], progress=progress, timeout=timeout)
        return reply

    def _ask_until_pool_known(self, message: Deploy, deadline: float) -> Any:
        """Ask, and ask again (same operation key) while a just-restarted controller answers
        that its pool is not known yet; it stops saying so within its ``site_timeout``."""
        while True:
            try:
                return self._ask(message)
            except ControllerError as exc:
                if not (exc.recoverable and exc.message.startswith(POOL_NOT_KNOWN)) or \
                        time.monotonic() >= deadline:
                    raise
            time.sleep(_POLL)  # polling interval of a remote condition, not a synchronisation

    def status(self, app: str | None = None, *, page_size: int = 0) -> Any:
        """Returns: one application's status (``app`` given) or a list of every application's.

        The controller answers a page at a time (``protocol.Status``); this fetches every page
        and joins an application's VMs back into one row, so the result has the same shape for
        ten VMs or 100,000.

        Args:
            app: one application (None: all of the tenant's).
            page_size: VMs per page (0: the controller's default).

        Raises:
            NotFound: no such application for this tenant.
        """
        apps: list[dict[str, Any]] = []
        cursor = None
        while True:
            reply = self._ask(Status(self._token, app, cursor, page_size))
            for row in reply["apps"]:
                if row.pop("continued", False) and apps and apps[-1]["app"] == row["app"]:
                    if not isinstance(apps[-1]["vms"], list):  # sequences arrive as tuples
                        apps[-1]["vms"] = list(apps[-1]["vms"])
                    apps[-1]["vms"].extend(row["vms"])
                else:
                    apps.append(row)
            cursor = reply.get("next")
            if not cursor:
                break
        return apps[0] if app is not None else apps

    def undeploy(self, app: str, *, wait: bool = True, progress: Progress | None = None,
                 timeout: float = 300.0, op_key: str | None = None) -> dict[str, Any]:
        """Undeploy an application (idempotent: one already undeployed is ``undeployed``).

        Raises:
            NotFound: no such application for this tenant (and none undeployed by it).
        """
        reply = self._ask(Undeploy(self._token, app, op_key or f"undeploy-{uuid.uuid4().hex}"))
        if wait and reply.get("op") and reply.get("state") != "undeployed":
            reply["operation"] = self.wait(reply["op"], progress=progress, timeout=timeout)
            reply["state"] = "undeployed" if reply["operation"]["state"] == "done" else reply["state"]
        return reply

    def sites(self, *, page_size: int = 0, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Returns: the pool, one row per site (site, driver, capacity, used, vms, health ...),
        in site name order.

        The controller answers a page at a time (``protocol.Sites``); this fetches every page
        and joins them, so the result has the same shape for one site or 10,000.

        Args:
            page_size: sites per page (0: the controller's default).
            progress: called after each page of a listing longer than one page, with a snapshot
                shaped as an operation's (``{"state": "running" | "done", "detail": {"total",
                "listed"}}``) so the CLI's progress bar can show it.
        """
        def ask(cursor: str | None) -> Any:
            return self._ask(Sites(self._token, cursor, page_size))

        def report(listed: int, total: int | None, last: bool) -> None:
            if progress is not None:
                progress({"state": "done" if last else "running",
                          "detail": {"total": total or listed, "listed": listed}})

        return [row for page in join_pages(ask, "sites", report) for row in page]

    def remove_site(self, site: str, *, op_key: str | None = None) -> dict[str, Any]:
        """Remove a site from the pool and the overlay (idempotent: a removed site is ``removed``).

        The site's agent, if reachable, tears down every Wind device; the other sites drop
        their entries towards it. The removal persists; an agent of that name that starts
        again later rejoins as a new, empty site.

        Args:
            site: the site.
            op_key: an idempotency key (default: a fresh one).

        Returns:
            ``{"op", "site", "state": "removed", "agent": "notified" | "unreachable" | "unchanged",
            "sites_pushed"}``.

        Raises:
            SiteInUse: applications have VMs placed there; nothing was changed.
            Forbidden: this node is not an operator (its key is not filed under the
                controller's ``keys_dir/operator/``).
            NotFound: no such site.
        """
        return dict(self._ask(RemoveSite(self._token, site, op_key or f"remove-site-{uuid.uuid4().hex}")))

    def operation(self, op: str) -> dict[str, Any]:
        """Returns: an operation's state and progress."""
        return dict(self._ask(GetOperation(self._token, op)))

    def wait(self, op: str, *, progress: Progress | None = None, timeout: float = 300.0) -> dict[str, Any]:
        """Poll an operation until it is ``done`` or ``failed``.

        Returns:
            The final operation snapshot.

        Raises:
            ControllerError: it did not finish within ``timeout`` (``error_type`` ``Timeout``).
        """
        deadline = time.monotonic() + timeout
        while True:
            snap = self.operation(op)
            if progress is not None:
                progress(snap)
            if snap["state"] in ("done", "failed"):
                return snap
            if time.monotonic() >= deadline:
                raise ControllerError(f"operation {op} did not finish within {timeout} s "
                                      f"(last: {snap['detail']})", error_type="Timeout", detail=snap,
                                      recoverable=True)
            time.sleep(_POLL)  # polling interval of a remote operation, not a synchronisation

    def kill_instance(self, app: str, instance: str) -> dict[str, Any]:
        """Fault injection: kill one instance through its site's hypervisor.

        Returns:
            ``{"killed": vm name, "site", "how"}``.
        """
        return dict(self._ask(KillInstance(self._token, app, instance)))


_OPERATOR_REQUESTS = (RemoveSite, Sites, GetOperation)
"""What an operator's node asks without a tenant token."""


def _descriptor_text(descriptor: str | Path | Mapping[str, Any]) -> str:
    if isinstance(descriptor, Mapping):
        return yaml.safe_dump(dict(descriptor), sort_keys=False)
    if isinstance(descriptor, Path) or ("\n" not in descriptor and Path(descriptor).is_file()):
        try:
            return Path(descriptor).read_text(encoding="utf-8")
        except OSError as exc:
            raise WindError(f"cannot read descriptor {descriptor}: {exc.strerror}") from None
    return descriptor
