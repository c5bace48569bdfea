"""A tiny controller + agents for overlay tests: plan, diff, push, realize into a NamespaceLab."""

from __future__ import annotations

from overlay import Nic, Plan, Realizer, Site, TenantNetwork, diff_plans, plan
from overlay.testing import NamespaceLab


class Overlay:
    """Plays the controller (re-plan with previous allocations, diff) and one agent per lab site."""

    def __init__(self, lab: NamespaceLab) -> None:
        self.lab = lab
        self.sites: dict[str, Site] = {}
        self.networks: dict[tuple[str, str], TenantNetwork] = {}
        self.nics: dict[str, Nic] = {}
        self.plan: Plan | None = None
        self.realizers: dict[str, Realizer] = {}

    def add_site(self, name: str) -> Site:
        site = self.sites[name] = self.lab.add_site(name)
        self.realizers[name] = Realizer(self.lab.site_netns(name))
        return site

    def add_network(self, tenant: str, name: str, cidr: str) -> None:
        self.networks[(tenant, name)] = TenantNetwork(tenant, name, cidr)

    def converge(self) -> Plan:
        """Re-plan, then push each site's diff to its realizer."""
        new = plan(self.sites.values(), self.networks.values(), self.nics.values(),
                   previous=self.plan.allocations if self.plan else None)
        for site, change in diff_plans(self.plan, new).items():
            if site in self.realizers:
                self.realizers[site].apply(change)
        self.plan = new
        return new

    def add_vm(self, vm: str, site: str, tenant: str, network: str, mac: str) -> str:
        """Place a NIC, converge, and plug a VM namespace into the site's bridge."""
        self.nics[vm] = Nic(vm, site, tenant, network, mac)
        p = self.converge()
        address = p.address_of(tenant, network, mac)
        return self.lab.add_vm(vm, site, mac=mac, bridge=p.attach_point(site, tenant, network),
                               address=address.interface,
                               mtu=self.realizers[site].segment_mtu(self.sites[site].underlay_ip))

    def web_vms(self, *sites: str) -> None:
        """Tenant acme's ``web`` network (10.1.0.0/24) with one VM per site: ``a1`` on a, ``b1`` on b ...

        The MACs are 52:54:00:00:01:01, :02 ... in the order given.
        """
        self.add_network("acme", "web", "10.1.0.0/24")
        for i, site in enumerate(sites, start=1):
            self.add_vm(f"{site}1", site, "acme", "web", f"52:54:00:00:01:{i:02x}")

    def ip_of(self, vm: str) -> str:
        nic = self.nics[vm]
        assert self.plan is not None
        return self.plan.address_of(nic.tenant, nic.network, nic.mac).ip

    def close(self) -> None:
        for realizer in self.realizers.values():
            realizer.close()
