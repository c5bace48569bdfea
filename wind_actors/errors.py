"""Every exception the wind_actors package raises.

    WindError                       base; carries context and ``recoverable``
    ├── ConfigError                 a config file or setting is invalid
    ├── DescriptorInvalid           an application descriptor has problems (.problems)
    ├── NotSupportedYet             a valid descriptor uses a section not supported yet
    ├── PlacementFailed             no placement satisfies the request (.explanation)
    ├── NotFound                    no such tenant/application/operation for this tenant
    ├── SiteInUse                   a site cannot be removed while VMs are placed on it (recoverable)
    ├── Unauthenticated             a tenant token is not in the config
    ├── Forbidden                   the sender's role may not do this (a refused message, link, monitor)
    ├── InvalidPage                 a paged listing's cursor or page size is not one it allows
    ├── StoreError                  the desired-state store failed (busy/locked: recoverable)
    ├── NodeError                   the node runtime (wind_actors.runtime) failed; carries node=
    │   ├── WireError               a frame or message cannot be encoded or decoded (.reason)
    │   ├── NodeDownError           the link to a node broke or could not be made (recoverable)
    │   ├── NoSuchActor             no live actor is registered under that name on that node
    │   ├── AskTimeout              no reply came within the ask timeout (recoverable)
    │   ├── ActorError              the target actor raised while handling an ask (.remote_type)
    │   └── SecurityError           CURVE keys missing or unreadable
    ├── VMCrashed                   a VM stopped without being asked; its VM actor fails (recoverable)
    ├── ControllerError             the controller refused or failed a request (.error_type, .detail)
    └── (more are added by the runtime, services and CLI issues)
"""

from __future__ import annotations

from typing import Any

__all__ = ["WindError", "ConfigError",
           "DescriptorInvalid", "NotSupportedYet", "PlacementFailed", "NotFound", "Unauthenticated", "Forbidden",
           "InvalidPage", "SiteInUse", "StoreError",
           "NodeError", "WireError", "NodeDownError", "NoSuchActor", "AskTimeout", "ActorError",
           "SecurityError", "VMCrashed", "ControllerError"]


class WindError(Exception):
    """Base of every wind_actors error.

    Args:
        message: what was wrong, where, and what is allowed.
        recoverable: whether retrying may succeed (restart logic reads it).
        **context: structured context such as ``node=`` or ``vm=``.
    """

    recoverable: bool = False

    def __init__(self, message: str, *, recoverable: bool | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        if recoverable is not None:
            self.recoverable = recoverable
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{ctx}]"


class ConfigError(WindError):
    """A configuration file or value is invalid."""


# --- core services (wind_actors/services) -------------------------------------------------


class DescriptorInvalid(WindError):
    """An application descriptor was rejected before anything was placed.

    Every problem found is listed, not just the first one.

    Args:
        problems: the ``services.Problem`` records (``path``, ``found``, ``allowed``).
        **context: e.g. ``source=`` (the file) or ``tenant=``.
    """

    def __init__(self, problems: Any, **context: Any) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"descriptor rejected, {len(self.problems)} problem(s):\n{lines}", **context)


class NotSupportedYet(WindError):
    """A valid descriptor uses a section Wind does not act on yet (refused, never ignored)."""

    def __init__(self, features: Any, **context: Any) -> None:
        self.features = list(features)
        super().__init__(
            f"descriptor section(s) {', '.join(self.features)} are valid but not supported yet; "
            "remove them to deploy now", **context)


class PlacementFailed(WindError):
    """No placement of the whole application satisfies its constraints; nothing was placed.

    ``explanation`` is a ``services.Explanation``: which instance could not be placed and how
    many sites each constraint excluded. Retrying may succeed once capacity changes.
    """

    recoverable = True

    def __init__(self, explanation: Any, **context: Any) -> None:
        self.explanation = explanation
        super().__init__(str(explanation), **context)


class NotFound(WindError):
    """No such thing for this tenant (the same answer whether it is absent or another tenant's)."""


class Unauthenticated(WindError):
    """A request carried a tenant token that is not in the config (the token is never echoed)."""


class Forbidden(WindError):
    """The sender is authenticated but its role may not do this: a message type its role may not
    send, another tenant's token from a client's key, an operator's action (removing a site) from
    a client. Nothing was changed."""


class InvalidPage(WindError):
    """A paged listing (``Sites``, ``Status``, ``ListVMs``) was asked for a page it cannot give:
    a cursor it did not give out (malformed, or another listing's) or a negative page size.
    The message says what was wrong and what is allowed; nothing was listed."""


class SiteInUse(WindError):
    """A site cannot be removed while applications have VMs placed on it; nothing was changed.

    The message lists what is placed there. Retrying may succeed once they are undeployed.
    """

    recoverable = True


class StoreError(WindError):
    """The desired-state store failed; ``recoverable`` when the database was only busy or locked."""


# --- node runtime (wind_actors/runtime) ---------------------------------------------------


class NodeError(WindError):
    """Base of the node runtime's errors; ``context`` names the ``node=`` involved."""


class WireError(NodeError):
    """A frame or a message cannot be encoded or decoded.

    ``reason`` is one of ``malformed``, ``oversized``, ``unknown_version``, ``unknown_type``,
    ``unknown_kind``, ``unencodable``, ``unknown_target`` (the same words are the keys of the
    node's drop counters).
    """

    def __init__(self, message: str, *, reason: str = "malformed", **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason


class NodeDownError(NodeError):
    """The link to a node broke (or could not be made) before a reply came; retry may work."""

    recoverable = True


class NoSuchActor(NodeError):
    """No live actor is registered under that name on that node (Erlang's ``noproc``)."""


class AskTimeout(NodeError):
    """No reply came within the ask timeout; a late reply is dropped, never delivered."""

    recoverable = True


class ActorError(NodeError):
    """The target actor raised while handling an ask, or exited with an exception.

    ``remote_type`` is the qualified name of the exception raised on the target's side;
    ``remote_recoverable`` is its ``recoverable`` flag when it was a WindError.
    """

    def __init__(self, message: str, *, remote_type: str = "Exception",
                 recoverable: bool | None = None, **context: Any) -> None:
        super().__init__(message, recoverable=recoverable, **context)
        self.remote_type = remote_type


class SecurityError(NodeError):
    """CURVE keys are missing or unreadable, so the node cannot authenticate its peers."""


# --- the running system (agents, controller, client) ---------------------------------------


class VMCrashed(WindError):
    """The hypervisor reported a VM stopped without Wind asking; its VM actor fails with this
    so its supervisor restarts it and the VM is brought back per its restart policy."""

    recoverable = True


class ControllerError(WindError):
    """The controller answered a request with an error this client has no richer class for.

    ``error_type`` names the controller-side error class; ``detail`` holds its plain-data detail.
    """

    def __init__(self, message: str, *, error_type: str = "WindError", detail: Any = None,
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.error_type = error_type
        self.detail = detail
