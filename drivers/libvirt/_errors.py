"""Translate ``libvirt.libvirtError`` into :mod:`drivers.errors` (the driver boundary)."""

from __future__ import annotations

import re
from typing import Any

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


# "Cannot get interface MTU on 'br-x': No such device" (a bridge), "Unable to get index for
# interface tap-x: No such device" (a tap): a VM's NIC names a host device that is not there.
_MISSING_DEVICE = re.compile(r"interface[^']*?'?(?P<dev>[\w.:-]+)'?: No such device")


def translate(exc: libvirt.libvirtError, *, driver: str, vm: str | None = None, op: str | None = None,
              conn: Any = None) -> DriverError:
    """The Wind error for a libvirt error (raise it ``from exc``).

    libvirt reports many local failures as a "system error" (code 38), the
    same code as a broken socket: a missing bridge or tap becomes
    :class:`InvalidSpec` naming the device, and, given ``conn``, a system
    error on a connection that is still alive is a (not recoverable)
    :class:`BackendError`, not a lost connection that a restart would cure.

    Args:
        exc: what libvirt raised.
        driver: the driver's name, for context.
        vm: the VM concerned, if any.
        op: the Driver operation that failed.
        conn: the ``virConnect`` the call was made on, to tell a dead
            connection from a local failure (optional).

    Returns:
        A :class:`~drivers.errors.DriverError` subclass instance carrying
        libvirt's code and message.
    """
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    cls = ERROR_MAP.get(code, BackendError) if code is not None else BackendError
    if cls is BackendError and code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in message:
        cls = VMExists  # the test driver reports duplicates this way
    if code == libvirt.VIR_ERR_SYSTEM_ERROR:
        missing = _MISSING_DEVICE.search(message)
        if missing is not None:
            dev = missing.group("dev")
            return InvalidSpec(f"libvirt {op or 'call'} failed: network device {dev!r} does not exist on the host "
                               f"({message}); a NIC may only name an existing bridge or tap: create it first or "
                               "change the VM's NicSpec", driver=driver, vm=vm, op=op, code=code, device=dev)
        if conn is not None and _alive(conn):
            return BackendError(f"libvirt {op or 'call'} failed on the host: {message} (the connection is alive: "
                                "reconnecting would not help)", driver=driver, vm=vm, op=op, code=code,
                                recoverable=False)
    return cls(f"libvirt {op or 'call'} failed: {message}", driver=driver, vm=vm, op=op, code=code)


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False
