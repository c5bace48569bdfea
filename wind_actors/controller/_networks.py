"""Deploy-time checks of an application's tenant networks against what the tenant already has.

A tenant network belongs to the tenant, not to one application: every application of the tenant
that declares ``networks: {net: {cidr: ...}}`` joins the same layer-2 network ``net``. So a
deploy is refused, before anything is placed or stored, when

* it declares a network the tenant already has with another CIDR (a network has one CIDR:
  the first application to declare it fixed it), or
* the overlay planner could not plan the network with this application's NICs added — above all
  an exhausted CIDR: more NICs (this application's plus those already deployed) than the CIDR
  has host addresses.

The planner's check is the real one: :func:`overlay.plan` runs on just the networks this
application declares, with one stand-in NIC per NIC they will have, so any planning error it
would hit later is reported now, with the descriptor path of the network. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from overlay import Nic, Site, TenantNetwork, plan
from overlay.errors import OverlayError
from wind_actors.services import AppDescriptor, Problem, VMRecord

__all__ = ["network_problems"]

#: The stand-in site of the dry-run plan (TEST-NET-1: never a real underlay address).
_DRY_SITE = Site("dry-run", "192.0.2.1")


def network_problems(app: AppDescriptor, stored: Iterable[AppDescriptor],
                     vms: Iterable[VMRecord]) -> list[Problem]:
    """What is wrong with ``app``'s networks given the tenant's deployed applications (pure).

    Args:
        app: the application being deployed.
        stored: the stored applications, oldest first (other tenants' are ignored, and so is a
            stored application of the same name).
        vms: the stored VM records (those of ``stored`` applications count as NICs already on
            their networks).

    Returns:
        One :class:`~wind_actors.services.Problem` per bad network (path ``networks.NAME.cidr``);
        empty when the deploy may go ahead.
    """
    if not app.networks:
        return []
    mine = {net.name for net in app.networks}
    known: dict[str, tuple[str, str]] = {}          # network -> (cidr, declaring application)
    comp_nets: dict[tuple[str, str], tuple[str, ...]] = {}  # (app, component) -> networks
    for other in stored:
        if other.tenant != app.tenant or other.name == app.name:
            continue
        for comp in other.components:
            comp_nets[(other.name, comp.name)] = comp.networks
        for net in other.networks:
            known.setdefault(net.name, (net.cidr, other.name))
    deployed = dict.fromkeys(mine, 0)
    for rec in vms:
        if rec.tenant == app.tenant and rec.app != app.name:
            for net in comp_nets.get((rec.app, rec.component), ()):
                if net in deployed:
                    deployed[net] += 1
    adding = dict.fromkeys(mine, 0)
    for comp in app.components:
        for net in comp.networks:
            adding[net] += comp.count

    problems = []
    for net in app.networks:
        path = f"networks.{net.name}.cidr"
        fixed = known.get(net.name)
        if fixed is not None and fixed[0] != net.cidr:
            problems.append(Problem(path, net.cidr, (
                f"{fixed[0]}: tenant {app.tenant!r} already has network {net.name!r} with that CIDR "
                f"(declared by application {fixed[1]!r}); applications of one tenant share a network, "
                "so declare it with the same CIDR, or use another network name")))
            continue
        error = _dry_run(app.tenant, net.name, net.cidr, deployed[net.name] + adding[net.name])
        if error is not None:
            problems.append(Problem(path, net.cidr, (
                f"a CIDR with room for the {deployed[net.name] + adding[net.name]} NICs on network "
                f"{net.name!r} ({adding[net.name]} from this application, {deployed[net.name]} already "
                f"deployed); the overlay planner said: {error.message}")))
    return problems


def _dry_run(tenant: str, network: str, cidr: str, nics: int) -> OverlayError | None:
    """Plan one network with ``nics`` stand-in NICs; returns the planner's error, if any."""
    stand_ins = [Nic(f"nic-{i}", _DRY_SITE.name, tenant, network, _mac(i)) for i in range(nics)]
    try:
        plan([_DRY_SITE], [TenantNetwork(tenant, network, cidr)], stand_ins)
    except OverlayError as exc:
        return exc
    return None


def _mac(i: int) -> str:
    return "02:" + ":".join(f"{b:02x}" for b in i.to_bytes(5, "big"))
