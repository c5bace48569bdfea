"""Every exception the overlay package raises.

pyroute2's ``NetlinkError`` and the ``OSError`` raised when a network
namespace is missing are translated into these in the realizer, so nothing
above ``overlay/`` ever catches a third-party exception.

    OverlayError                 base; carries site=, tenant=, network=, netns=, device= and ``recoverable``
    ├── PlanError                the planner's input is inconsistent (unknown site, duplicate MAC, bad CIDR ...)
    │   └── AddressPoolExhausted a tenant network's CIDR has no free address left
    └── RealizeError             the kernel refused a change (``errno`` in the context)  (recoverable)
        └── NamespaceNotFound    the named network namespace does not exist              (recoverable)

``recoverable`` says whether retrying the same call later may succeed. A
``PlanError`` never is: the same input gives the same answer. A kernel
failure may be (a device being deleted by someone else, a namespace not yet
created by the site's provisioning).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OverlayError",
    "PlanError",
    "AddressPoolExhausted",
    "RealizeError",
    "NamespaceNotFound",
]


class OverlayError(Exception):
    """Base of every overlay error.

    Args:
        message: what was wrong, where, and what is allowed.
        recoverable: whether retrying may succeed; ``None`` keeps the class default.
        **context: structured context (``site=``, ``tenant=``, ``network=``,
            ``netns=``, ``device=``, ``errno=`` ...); ``None`` values are dropped.

    The context is kept in ``self.context`` (a dict).
    """

    recoverable: bool = False

    def __init__(self, message: str, *, recoverable: bool | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        if recoverable is not None:
            self.recoverable = recoverable
        self.context = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{ctx}]"

    def __reduce__(self) -> Any:
        # Keep errors picklable with their context: Pykka re-raises them in
        # the caller's thread and loggers may copy them.
        return (_rebuild, (type(self), self.message, self.recoverable, dict(self.context)))


def _rebuild(cls: type[OverlayError], message: str, recoverable: bool, context: dict[str, Any]) -> OverlayError:
    return cls(message, recoverable=recoverable, **context)


class PlanError(OverlayError):
    """The planner's input is inconsistent; the message says which item and why."""


class AddressPoolExhausted(PlanError):
    """A tenant network has more NICs than its CIDR has host addresses."""


class RealizeError(OverlayError):
    """The kernel refused a change; ``context["errno"]`` holds the netlink error code."""

    recoverable = True


class NamespaceNotFound(RealizeError):
    """The network namespace named in the realizer's config does not exist."""
