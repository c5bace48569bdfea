"""RemoteRef: a location-transparent handle on ``name@node``.

A ref is bound to the node that made or received it and sends through that node, whether the
target lives on the same node (delivered straight into the Pykka inbox) or on another one
(encoded and queued for the I/O thread). Refs travel inside messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wind_actors.errors import NodeError

from ._wire import RefBase

if TYPE_CHECKING:
    import pykka

    from ._node import Node

__all__ = ["RemoteRef", "DEFAULT_ASK_TIMEOUT", "split_address"]

DEFAULT_ASK_TIMEOUT = 5.0


def split_address(address: str) -> tuple[str, str]:
    """Split ``"name@node"`` at its first ``@`` (node names may hold ``@`` themselves).

    Raises:
        NodeError: there is no ``@`` or either side is empty.
    """
    name, sep, node = address.partition("@")
    if not sep or not name or not node:
        raise NodeError(f"actor address {address!r} is not allowed; use NAME@NODE, e.g. "
                        "vm-7@agent@site-a")
    return name, node


class RemoteRef(RefBase):
    """A handle on the actor registered as ``name`` on node ``node_name``.

    Compares equal to every other ref of the same ``name@node`` and hashes alike.
    """

    __slots__ = ("_node",)

    def __init__(self, name: str, node_name: str, node: Node | None = None) -> None:
        super().__init__(name, node_name)
        self._node = node

    @property
    def is_local(self) -> bool:
        """Whether the target lives on the node this ref is bound to."""
        return self._node is not None and self._node.name == self.node_name

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting (at most once, FIFO per sender-receiver pair).

        Raises:
            WireError: the message cannot be encoded (remote targets only) or is too large.
            NodeDownError: the target's node address is unknown.
        """
        node = self._node  # inlined _bound(): this is the per-message hot path
        if node is None:
            self._bound()
        node.tell(self, message)  # type: ignore[union-attr]

    def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and wait for the target's ``on_receive`` return value.

        Args:
            message: a registered message or plain data.
            timeout: seconds to wait (``None``: forever); a late reply is dropped.

        Returns:
            The reply.

        Raises:
            AskTimeout: no reply within ``timeout``.
            NodeDownError: the link to the target's node broke first (raised at once).
            NoSuchActor: nothing live is registered under that name there.
            ActorError: the target raised; ``remote_type`` names the exception.
            WireError: the message or the reply could not be encoded or decoded.
        """
        return self._bound().ask(self, message, timeout)

    def ask_future(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> pykka.Future[Any]:
        """Like :meth:`ask` but returns a Pykka future at once; ``future.get()`` raises as ask."""
        return self._bound().ask_future(self, message, timeout)

    def _bound(self) -> Node:
        if self._node is None:
            raise NodeError(f"{self.address} is not bound to a running node; get refs from "
                            "node.ref(...) or from received messages")
        return self._node

    def __reduce__(self) -> Any:
        raise TypeError("refs are never pickled; they travel as registered wire values")
