"""Translate ``libvirt.libvirtError`` into :mod:`drivers.errors` (the driver boundary)."""

from __future__ import annotations

import libvirt

from ..errors import (
    AuthenticationFailed, BackendError, ConnectionLost, DriverError, InvalidSpec, InvalidState,
    NotSupported, OperationTimeout, VMExists, VMNotFound,
)

__all__ = ["translate", "ERROR_MAP"]

#: libvirt error code -> Wind error class. Anything else is a BackendError.
ERROR_MAP: dict[int, type[DriverError]] = {
    libvirt.VIR_ERR_NO_DOMAIN: VMNotFound,
    libvirt.VIR_ERR_DOM_EXIST: VMExists,
    libvirt.VIR_ERR_OPERATION_INVALID: InvalidState,
    libvirt.VIR_ERR_NO_SUPPORT: NotSupported,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED: NotSupported,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED: NotSupported,
    libvirt.VIR_ERR_XML_ERROR: InvalidSpec,
    libvirt.VIR_ERR_XML_DETAIL: InvalidSpec,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED: InvalidSpec,
    libvirt.VIR_ERR_INVALID_ARG: InvalidSpec,
    libvirt.VIR_ERR_INVALID_MAC: InvalidSpec,
    libvirt.VIR_ERR_NO_KERNEL: InvalidSpec,
    libvirt.VIR_ERR_OS_TYPE: InvalidSpec,
    libvirt.VIR_ERR_INVALID_CONN: ConnectionLost,
    libvirt.VIR_ERR_NO_CONNECT: ConnectionLost,
    libvirt.VIR_ERR_RPC: ConnectionLost,
    libvirt.VIR_ERR_SYSTEM_ERROR: ConnectionLost,
    libvirt.VIR_ERR_NO_SERVER: ConnectionLost,
    libvirt.VIR_ERR_NO_CLIENT: ConnectionLost,
    libvirt.VIR_ERR_UNKNOWN_HOST: ConnectionLost,
    libvirt.VIR_ERR_AUTH_FAILED: AuthenticationFailed,
    libvirt.VIR_ERR_AUTH_CANCELLED: AuthenticationFailed,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE: AuthenticationFailed,
    libvirt.VIR_ERR_ACCESS_DENIED: AuthenticationFailed,
    libvirt.VIR_ERR_OPERATION_TIMEOUT: OperationTimeout,
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE: OperationTimeout,
}


def translate(exc: libvirt.libvirtError, *, driver: str, vm: str | None = None, op: str | None = None) -> DriverError:
    """The Wind error for a libvirt error (raise it ``from exc``).

    Args:
        exc: what libvirt raised.
        driver: the driver's name, for context.
        vm: the VM concerned, if any.
        op: the Driver operation that failed.

    Returns:
        A :class:`~drivers.errors.DriverError` subclass instance carrying
        libvirt's code and message.
    """
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    cls = ERROR_MAP.get(code, BackendError) if code is not None else BackendError
    if cls is BackendError and code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in message:
        cls = VMExists  # the test driver reports duplicates this way
    return cls(f"libvirt {op or 'call'} failed: {message}", driver=driver, vm=vm, op=op, code=code)
