"""Authorization: who a sender is, and what each role may say (pure: no threads, no sockets).

CURVE tells a node *who* a peer is; this module says what that peer may *do*. Every frame's
authenticated sender becomes an :class:`Identity` (its node name, its **role** and, for agents
and clients, the site or tenant it belongs to). Roles come from the trust configuration (the
folder a peer's public key sits in, see ``_trust``), never from the name a node gives itself.

Two tables decide, and the runtime reads both before anything reaches an actor:

- **per message type** (:func:`allow`, declared next to the message's class): the roles that may
  send it, and optionally a field that must name the sender's own site or tenant;
- **per registered actor** (:class:`Access`, given to ``Node.register``): whether message types
  without a rule are refused (``strict``, for system actors), and which roles may monitor or
  link to it.

Messages sent inside one process carry no envelope sender and are :data:`LOCAL`: whoever holds a
local ref is part of the process already.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = [
    "Identity", "Rule", "Access", "allow", "rule_of", "rules", "check_message", "check_watch",
    "CONTROLLER", "AGENT", "CLIENT", "OPERATOR", "PEER", "ROLES", "LOCAL", "OPEN", "SYSTEM",
    "identity_of", "type_verdict", "scope_verdict", "DEPENDS",
]

CONTROLLER = "controller"
AGENT = "agent"
CLIENT = "client"
OPERATOR = "operator"
PEER = "peer"
"""A trusted node with no system role (a key at the top of ``keys_dir``): embedding and tests."""

ROLES = (CONTROLLER, AGENT, CLIENT, OPERATOR, PEER)
SCOPED = {AGENT: "site", CLIENT: "tenant"}
"""Roles that belong to one site or tenant, and what their scope names."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated sender.

    Attributes:
        node: the node's name (the stem of its trusted key file).
        role: one of :data:`ROLES`, or ``"local"`` for this process.
        scope: the site of an agent, the tenant of a client; ``None`` otherwise.
    """

    node: str
    role: str
    scope: str | None = None

    def __str__(self) -> str:
        scope = f" of {SCOPED.get(self.role, 'scope')} {self.scope}" if self.scope else ""
        return f"{self.role}{scope} ({self.node})"

    @property
    def is_local(self) -> bool:
        """Whether the message came from inside this process."""
        return self.role == "local"


LOCAL = Identity("", "local")
"""The sender of every message sent inside this process."""


def identity_of(sender: Any) -> Identity:
    """The identity behind an actor's ``self.sender`` (``None`` means a local sender)."""
    return sender if isinstance(sender, Identity) else LOCAL


@dataclasses.dataclass(frozen=True)
class Rule:
    """Who may send one message type.

    Attributes:
        roles: the roles allowed.
        scope_field: a field of the message that must equal the sender's scope (an agent may only
            speak for its own site); checked for scoped roles only.
    """

    roles: frozenset[str]
    scope_field: str | None = None

    def describe(self) -> str:
        """``"agent (of its own site)"``-style text for refusals."""
        names = " or ".join(sorted(self.roles))
        return f"{names} (for its own {self.scope_field})" if self.scope_field else names


_RULES: dict[type, Rule] = {}


def allow(*roles: str, scope_field: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: the permission rule of a message type, declared next to it.

    Args:
        roles: the roles that may send it (from :data:`ROLES`).
        scope_field: a field that must name the sender's own site (agents) or tenant (clients).

    Raises:
        ValueError: an unknown role, or ``scope_field`` is not a field of the class.
    """
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"unknown roles {unknown or '(none)'}; allowed: {', '.join(ROLES)}")

    def register(cls: type[T]) -> type[T]:
        if scope_field is not None:
            fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) \
                else set(getattr(cls, "_fields", ()))
            if scope_field not in fields:
                raise ValueError(f"{cls.__qualname__} has no field {scope_field!r} to check the "
                                 "sender's scope against")
        _RULES[cls] = Rule(frozenset(roles), scope_field)
        return cls

    return register


def rule_of(cls: type) -> Rule | None:
    """The permission rule of a message type, or ``None`` when it has none."""
    return _RULES.get(cls)


def rules() -> dict[type, Rule]:
    """Every declared rule (a copy), message type -> rule."""
    return dict(_RULES)


@dataclasses.dataclass(frozen=True)
class Access:
    """Who may reach a registered actor, beyond each message's own rule.

    Attributes:
        strict: refuse message types that have no rule (system actors act only on rules).
        monitor: roles that may monitor it; ``None`` lets any trusted peer.
        link: roles that may link to it; ``None`` lets any trusted peer.
    """

    strict: bool = False
    monitor: frozenset[str] | None = None
    link: frozenset[str] | None = None


OPEN = Access()
"""The default: today's Erlang semantics for any trusted peer (embedding, user actors)."""

SYSTEM = Access(strict=True, monitor=frozenset({CONTROLLER}), link=frozenset())
"""A Wind system actor: only messages with a rule, monitored by the controller, never linked."""


def check_message(sender: Identity, message: Any, access: Access) -> str | None:
    """Whether ``sender`` may send ``message`` to an actor registered with ``access``.

    Returns:
        ``None`` when allowed, else why not (what was wrong and what is allowed).
    """
    why = type_verdict(sender, type(message), access)
    return scope_verdict(sender, message) if why is DEPENDS else why


def scope_verdict(sender: Identity, message: Any) -> str | None:
    """The rest of :func:`check_message` once :func:`type_verdict` said :data:`DEPENDS`: whether
    the message's scope field names the sender's own site or tenant."""
    field = _RULES[type(message)].scope_field
    value = getattr(message, field, None)  # type: ignore[arg-type]
    if value != sender.scope:
        return (f"{_kind(type(message))} names {field} {value!r}, but {sender} may only speak "
                f"for {SCOPED[sender.role]} {sender.scope!r}")
    return None


DEPENDS = "depends on the message's fields"
"""What :func:`type_verdict` returns when the verdict needs the message itself (a scope field)."""


def type_verdict(sender: Identity, cls: type, access: Access) -> str | None:
    """The verdict of :func:`check_message` for every message of type ``cls`` from ``sender``.

    The runtime decides once per frame, target and message type rather than once per message.

    Returns:
        ``None`` when allowed, why not when refused, or :data:`DEPENDS` when the rule names a
        scope field that each message must be checked for.
    """
    if sender.role == "local":
        return None
    rule = _RULES.get(cls)
    if rule is None:
        if access.strict:
            return (f"{_kind(cls)} has no permission rule and this actor accepts only "
                    "messages that have one")
        return None
    if sender.role not in rule.roles:
        return f"{_kind(cls)} may be sent by {rule.describe()}, not by {sender}"
    if rule.scope_field is not None and sender.role in SCOPED:
        return DEPENDS
    return None


def check_watch(sender: Identity, what: str, allowed: Iterable[str] | None) -> str | None:
    """Whether ``sender`` may ``what`` (``"monitor"`` or ``"link"``) an actor; see :class:`Access`.

    Returns:
        ``None`` when allowed, else why not.
    """
    if sender.is_local or allowed is None:
        return None
    allowed = frozenset(allowed)
    if sender.role in allowed:
        return None
    who = " or ".join(sorted(allowed)) or "no remote node"
    return f"{sender} may not {what} this actor; allowed: {who}"


def _kind(cls: type) -> str:
    mtype = getattr(cls, "__wind_message__", None)
    return f"message {mtype.tag!r}" if mtype is not None else f"a plain {cls.__name__}"
