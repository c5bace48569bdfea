"""The application descriptor: what a tenant asks for, as frozen plain data.

The YAML grammar is documented in ``parse_descriptor`` (``_parse.py``); this module only holds the
validated result, which the scheduler, store and lifecycle read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

__all__ = [
    "RESTART_POLICIES", "POLICIES", "SCOPES", "SPREAD_OVER", "SITE_KINDS",
    "Problem", "Where", "Relation", "LatencyBound", "Spread", "ComponentPlacement",
    "Component", "Network", "AppDescriptor", "instance_id", "vm_name",
]

RESTART_POLICIES = ("always", "on-failure", "never")
POLICIES = ("binpack", "spread")
SCOPES = ("host", "site", "region")
SPREAD_OVER = ("site", "region")
SITE_KINDS = ("hypervisor", "cloud")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a descriptor.

    Attributes:
        path: where, as a dotted path (``components.web.vcpus``).
        found: what was found there.
        allowed: what is allowed instead.
    """

    path: str
    found: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.path}: found {self.found}; allowed: {self.allowed}"


@dataclass(frozen=True)
class Where:
    """Which sites qualify. Every non-empty field must hold (AND); within a field, any value (OR).

    Labels are ``(key, value)`` pairs that must all be present on the site.
    """

    sites: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    drivers: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sites or self.regions or self.labels or self.drivers or self.kinds)


@dataclass(frozen=True)
class Relation:
    """Affinity or anti-affinity towards the instances of ``component`` within ``scope``."""

    component: str
    scope: str = "site"


@dataclass(frozen=True)
class LatencyBound:
    """Round-trip time at most ``ms`` to every instance of ``component``, or to ``site``."""

    ms: float
    component: str | None = None
    site: str | None = None


@dataclass(frozen=True)
class Spread:
    """Soft target: spread instances over sites or regions, in proportion to ``weights``.

    With no weights, spread evenly over every eligible value. Values missing from non-empty
    weights get a target of zero (used only when nothing else fits).
    """

    over: str = "site"
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ComponentPlacement:
    """A component's placement rules (hard, except ``spread``)."""

    where: Where = Where()
    affinity: tuple[Relation, ...] = ()
    anti_affinity: tuple[Relation, ...] = ()
    spread: Spread | None = None
    max_latency: tuple[LatencyBound, ...] = ()


@dataclass(frozen=True)
class Component:
    """One component: ``count`` identical VM instances.

    Exactly one of ``image`` or ``kernel`` is set; ``initrd``/``cmdline`` go with ``kernel``.
    """

    name: str
    vcpus: int = 1
    memory_mb: int = 512
    disk_gb: int = 0
    count: int = 1
    restart: str = "always"
    image: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    networks: tuple[str, ...] = ()
    placement: ComponentPlacement = ComponentPlacement()

    def instance_ids(self) -> list[str]:
        """Returns: the ids of this component's instances, ``name-0`` .. ``name-(count-1)``."""
        return [instance_id(self.name, i) for i in range(self.count)]


@dataclass(frozen=True)
class Network:
    """A tenant network: a name and a CIDR (realized by the overlay)."""

    name: str
    cidr: str


@dataclass(frozen=True)
class AppDescriptor:
    """A validated application descriptor.

    Attributes:
        tenant: the owning tenant.
        name: the application name, unique within the tenant.
        components: in declaration order.
        networks: the application's tenant networks.
        policy: ``binpack`` (default, fill sites) or ``spread`` (least used site first).
        where: application-wide site filter, AND-ed with each component's own.
        scaling / schedules: validated sections that later issues act on (None when absent).
        raw: the parsed document, for storage and round trips.
    """

    tenant: str
    name: str
    components: tuple[Component, ...]
    networks: tuple[Network, ...] = ()
    policy: str = "binpack"
    where: Where = Where()
    scaling: Mapping[str, Any] | None = None
    schedules: tuple[Mapping[str, Any], ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def component(self, name: str) -> Component:
        """Returns: the component called ``name`` (KeyError if there is none)."""
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    def instances(self) -> Iterator[tuple[str, Component]]:
        """Yields: ``(instance_id, component)`` for every instance, in declaration order."""
        for comp in self.components:
            for iid in comp.instance_ids():
                yield iid, comp

    @property
    def vm_count(self) -> int:
        """The number of VM instances the application asks for."""
        return sum(c.count for c in self.components)


def instance_id(component: str, index: int) -> str:
    """Returns: the instance id of a component's ``index``-th instance (``web-0``)."""
    return f"{component}-{index}"


def vm_name(tenant: str, app: str, instance: str) -> str:
    """Returns: the VM name used on every driver, ``tenant.app.instance``.

    Names in descriptors cannot contain dots, so the name is unambiguous.
    """
    return f"{tenant}.{app}.{instance}"
