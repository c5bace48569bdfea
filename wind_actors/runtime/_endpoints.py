"""Which return addresses a node learns from a peer's frames (pure: no threads, no sockets).

Every frame names the address its sender listens on, and a node sends its answers there. A
Wind node always advertises the endpoint ZeroMQ bound (``LAST_ENDPOINT``): a literal IP and a
port, or an ``ipc://`` path. Anything else in a frame is refused, never learned: ZeroMQ resolves
a host name on its one I/O thread, synchronously, at every reconnect, so a peer that advertised
names which resolve slowly (or hundreds of them) would make the whole node deaf. Host names stay
allowed where an operator writes them, in ``[node.peers]``.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_literal_endpoint", "LITERAL_ENDPOINTS"]

LITERAL_ENDPOINTS = "tcp://IPv4:PORT, tcp://[IPv6]:PORT or ipc://PATH"
"""What a frame's return address may be, for error messages."""

_MAX_LEN = 256


def is_literal_endpoint(address: str) -> bool:
    """Whether ``address`` is an endpoint ZeroMQ can dial without resolving a name."""
    if len(address) > _MAX_LEN or not address.isprintable():
        return False
    if address.startswith("ipc://"):
        return len(address) > len("ipc://")
    if not address.startswith("tcp://"):
        return False
    host, sep, port = address[len("tcp://"):].rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not port.isascii():
        return False
    if host.startswith("[") and host.endswith("]"):
        host, version = host[1:-1], 6
    else:
        version = 4
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False
