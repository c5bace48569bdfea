"""Tenants: tokens from the config identify a tenant; every lookup is scoped to one tenant.

Isolation is by construction: a ``TenantView`` only ever queries with its own tenant name, so
another tenant's application is "not found", exactly as one that does not exist. Tokens are kept
only as SHA-256 digests and compared in constant time; they never appear in errors or logs.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Mapping

from ..errors import ConfigError, DescriptorInvalid, NotFound, Unauthenticated
from ._descriptor import AppDescriptor, Problem
from ._store import AppRecord, Operation, Store, VMRecord

__all__ = ["Tenants", "TenantView"]

_MIN_TOKEN = 16


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Tenants:
    """The tenants a controller serves and their tokens.

    Args:
        tokens: ``tenant name -> token``.

    Raises:
        ConfigError: a token is shorter than 16 characters or two tenants share one.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._by_digest: list[tuple[bytes, str]] = []
        seen: dict[bytes, str] = {}
        for tenant, token in sorted(tokens.items()):
            if not isinstance(token, str) or len(token) < _MIN_TOKEN:
                raise ConfigError(f"tenant {tenant!r} has a token shorter than {_MIN_TOKEN} characters; "
                                  "use a long random token (e.g. `python -c 'import secrets; "
                                  "print(secrets.token_urlsafe())'`)")
            digest = _digest(token)
            if digest in seen:
                raise ConfigError(f"tenants {seen[digest]!r} and {tenant!r} share a token; each needs its own")
            seen[digest] = tenant
            self._by_digest.append((digest, tenant))
        self.names = tuple(t for _, t in self._by_digest)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Tenants":
        """Read ``[tenants.NAME] token = "..."`` (or ``[tenants] NAME = "token"``) from a config.

        Raises:
            ConfigError: the section is missing or malformed.
        """
        section = config.get("tenants")
        if not isinstance(section, Mapping) or not section:
            raise ConfigError("controller config has no tenants; add [tenants.NAME] token = \"...\"")
        tokens = {}
        for name, value in section.items():
            token = value.get("token") if isinstance(value, Mapping) else value
            if not isinstance(token, str):
                raise ConfigError(f"tenant {name!r} has no token; set [tenants.{name}] token = \"...\"")
            tokens[str(name)] = token
        return cls(tokens)

    def authenticate(self, token: str) -> str:
        """Returns: the tenant that ``token`` belongs to.

        Raises:
            Unauthenticated: the token is not in the config (it is not echoed).
        """
        digest = _digest(token if isinstance(token, str) else "")
        found = None
        for known, tenant in self._by_digest:  # compare against all: time does not leak which
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None:
            raise Unauthenticated("tenant token not recognized; use the token given in the controller config")
        return found


class TenantView:
    """One tenant's window on the store: every read and write is scoped to ``tenant``.

    Args:
        store: the desired-state store.
        tenant: the authenticated tenant.
    """

    def __init__(self, store: Store, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def application(self, name: str) -> AppRecord:
        """Returns: the tenant's application ``name``. Raises: NotFound (also for others' apps)."""
        return self.store.get_application(self.tenant, name)

    def applications(self) -> list[AppRecord]:
        """Returns: the tenant's applications, sorted by name."""
        return self.store.list_applications(self.tenant)

    def vms(self, app: str) -> list[VMRecord]:
        """Returns: the VMs of the tenant's application ``app``. Raises: NotFound."""
        self.application(app)
        return self.store.vms(self.tenant, app)

    def operation(self, op_id: str) -> Operation:
        """Returns: the tenant's operation ``op_id``. Raises: NotFound (also for others')."""
        return self.store.get_operation(self.tenant, op_id)

    def require_own(self, tenant: str, what: str, name: str) -> None:
        """Raise NotFound unless ``tenant`` is this view's tenant (for records from elsewhere).

        Raises:
            NotFound: the same "not found" as for something that does not exist.
        """
        if tenant != self.tenant:
            raise NotFound(f"{what} {name!r} not found", tenant=self.tenant)

    def check_descriptor(self, app: AppDescriptor) -> AppDescriptor:
        """Returns: ``app`` if it names this tenant.

        Raises:
            DescriptorInvalid: the descriptor's ``tenant`` is another one (a token acts for one tenant).
        """
        if app.tenant != self.tenant:
            raise DescriptorInvalid([Problem("tenant", repr(app.tenant),
                                             f"the tenant of the token used ({self.tenant!r})")],
                                    tenant=self.tenant)
        return app
