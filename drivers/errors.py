"""Every exception the drivers package raises.

Backend exceptions (``libvirt.libvirtError``, libcloud's errors, anything a
backend SDK raises) are translated into these at the driver boundary, so
nothing above ``drivers/`` ever catches a third-party exception.

    DriverError                  base; carries driver=, vm=, host= and ``recoverable``
    ├── NotSupported             the driver lacks the capability for this operation
    ├── VMNotFound               no VM of that name on this driver
    ├── VMExists                 define() of a name that is already defined
    ├── InvalidState             the operation is not allowed in the VM's current state
    ├── InvalidSpec              a VMSpec (or NicSpec) the driver cannot accept
    ├── CapacityExceeded         not enough cpus/memory/disk left (on the host asked for)
    ├── ConnectionLost           the endpoint went away             (recoverable)
    ├── AuthenticationFailed     the endpoint refused our credentials
    ├── Throttled                the endpoint asked us to slow down (recoverable)
    ├── OperationTimeout         the backend did not answer in time (recoverable)
    ├── BackendError             the backend failed in a way we do not map more precisely
    ├── DriverNotFound           no plug-in of that name in entry-point group ``wind.drivers``
    └── TestSupportError         drivers.testing could not set up a real part
        ├── GuestBuildError      the tiny test guest could not be built
        └── DaemonError          a daemon (libvirtd, moto_server, mimic) did not start

``recoverable`` says whether retrying the same call later may succeed; the
driver actor and the VM actors' restart logic read it. It defaults per class
(True for ConnectionLost, Throttled, OperationTimeout) and can be overridden
per instance (a simulated start error can be either).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DriverError",
    "NotSupported",
    "VMNotFound",
    "VMExists",
    "InvalidState",
    "InvalidSpec",
    "CapacityExceeded",
    "ConnectionLost",
    "AuthenticationFailed",
    "Throttled",
    "OperationTimeout",
    "BackendError",
    "DriverNotFound",
    "TestSupportError",
    "GuestBuildError",
    "DaemonError",
]


class DriverError(Exception):
    """Base of every drivers error.

    Args:
        message: what was wrong, where, and what is allowed.
        driver: name of the driver (endpoint) that raised it.
        vm: name of the VM concerned, if any.
        recoverable: whether retrying may succeed; ``None`` keeps the class default.
        **context: more structured context (``host=``, ``op=``, ``code=`` ...).

    The context is kept in ``self.context`` (a dict) and also reachable as
    ``self.driver`` and ``self.vm``.
    """

    recoverable: bool = False

    def __init__(
        self,
        message: str,
        *,
        driver: str | None = None,
        vm: str | None = None,
        recoverable: bool | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.driver = driver
        self.vm = vm
        if recoverable is not None:
            self.recoverable = recoverable
        self.context = {k: v for k, v in {"driver": driver, "vm": vm, **context}.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{ctx}]"

    def __reduce__(self) -> Any:
        # Keep errors picklable/copyable with their context (pykka re-raises
        # them in the caller's thread; tests and loggers may copy them).
        return (_rebuild, (type(self), self.message, self.recoverable, dict(self.context)))


def _rebuild(cls: type[DriverError], message: str, recoverable: bool, context: dict[str, Any]) -> DriverError:
    return cls(message, recoverable=recoverable, **context)


class NotSupported(DriverError):
    """The driver lacks the capability for this operation (see ``driver.capabilities``).

    ``context["op"]`` names the operation.
    """


class VMNotFound(DriverError):
    """No VM of that name exists on this driver."""


class VMExists(DriverError):
    """A VM of that name is already defined on this driver."""


class InvalidState(DriverError):
    """The operation is not allowed in the VM's current state (``context["state"]``)."""


class InvalidSpec(DriverError):
    """The VM spec is invalid or cannot be expressed on this backend."""


class CapacityExceeded(DriverError):
    """Not enough free cpus, memory or disk for the request."""


class ConnectionLost(DriverError):
    """The connection to the endpoint is gone; reconnecting may help."""

    recoverable = True


class AuthenticationFailed(DriverError):
    """The endpoint refused the configured credentials (never included in the message)."""


class Throttled(DriverError):
    """The endpoint is rate-limiting us; ``context.get("retry_after")`` in seconds if known."""

    recoverable = True


class OperationTimeout(DriverError):
    """The backend did not answer within the allowed time."""

    recoverable = True


class BackendError(DriverError):
    """The backend failed in a way not mapped to a more precise error.

    ``context["code"]`` carries the backend's own error code when it has one.
    """


class DriverNotFound(DriverError):
    """No driver plug-in of that name is installed (entry-point group ``wind.drivers``)."""


class TestSupportError(DriverError):
    """drivers.testing could not set up a real part for a test or benchmark."""

    __test__ = False  # not a pytest test class, despite the name


class GuestBuildError(TestSupportError):
    """The guest could not be built (which input is missing, and the package that provides it)."""


class DaemonError(TestSupportError):
    """A test daemon could not be started (message says which, and why)."""
