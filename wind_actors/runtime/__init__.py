"""Wind nodes: location-transparent actors over ZeroMQ and msgpack (Erlang distribution).

Start a node, register actors by name, and talk to ``name@node`` from anywhere::

    from wind_actors.runtime import Node, message

    @message("wind.example.greet", version=1)
    @dataclass(frozen=True)
    class Greet:
        who: str

    node = Node.start(name="a@hq", bind="tcp://127.0.0.1:7001", keys_dir="keys")
    node.register("greeter", Greeter.start())
    node.connect("b@site", "tcp://127.0.0.1:7002")
    node.ref("greeter@b@site").ask(Greet("you"), timeout=5.0)

See ``_node`` for the actor-side contract, ``_wire`` for the wire format, ``_membership`` for
failure detection and its defaults, ``_security`` for CURVE keys, ``_trust`` for the roles
their folders give, and ``_authz`` for who may send what (``allow``, ``Access``, ``SYSTEM``).
"""

from ._authz import (AGENT, CLIENT, CONTROLLER, LOCAL, OPEN, OPERATOR, PEER, ROLES, SYSTEM, Access,
                     Identity, Rule, allow, identity_of, rule_of, rules)
from ._events import NodeDown, NodeUp
from ._membership import DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_MISSES
from ._node import Node
from ._refs import DEFAULT_ASK_TIMEOUT, RemoteRef
from ._security import KeyPair, TrustPolicy, generate_keys, load_keypair
from ._trust import key_path, role_dir
from ._wire import WIRE_VERSION, Codec, MessageType, message, registered_types

__all__ = [
    "Node", "RemoteRef", "NodeUp", "NodeDown", "message", "registered_types", "MessageType",
    "Codec", "WIRE_VERSION", "DEFAULT_ASK_TIMEOUT", "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_HEARTBEAT_MISSES", "KeyPair", "TrustPolicy", "generate_keys", "load_keypair",
    "key_path", "role_dir", "Identity", "Access", "Rule", "allow", "rule_of", "rules", "identity_of",
    "OPEN", "SYSTEM", "LOCAL", "ROLES", "CONTROLLER", "AGENT", "CLIENT", "OPERATOR", "PEER",
]
