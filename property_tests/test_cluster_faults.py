"""Hypothesis: a whole Wind cluster under injected faults, checked against a simple model.

Each example starts a real in-process :class:`~wind_actors.cluster.Cluster` (a controller and
three sim agents, each on its own node, over ZeroMQ with CURVE) and runs random steps: deploy a
small application (1-3 VMs, a random restart policy, binpack or spread) for one of two tenants,
undeploy one, and inject the faults Wind exists to survive:

- crash a VM behind Wind's back (``SimHypervisor.crash``), whether its agent runs or not;
- stop a site's agent and start a new one on the same node (its VMs keep running meanwhile);
- partition the controller from an agent (``Node.partition``) and heal it;
- drop a driver's connection to its hypervisor (``SimHypervisor.drop_connections``).

After every step the cluster must converge to the model (polled with a deadline, never a fixed
sleep):

- every instance of a deployed application exists in exactly one hypervisor, the one of the site
  it was placed on: no duplicates anywhere, nothing on another site;
- where that site's agent runs (cut off from the controller or not), the VM runs: a crashed
  ``always`` or ``on-failure`` VM came back, but a ``restart: never`` VM that crashed stays
  crashed;
- an undeployed application leaves no VM in any hypervisor once its sites are reachable, is then
  "not found", and never comes back; no hypervisor holds a VM the model does not know;
- each tenant's status lists exactly its own applications and VMs, on the sites the model
  recorded, and the other tenant's applications are "not found";
- the controller's pool shows every site up or down exactly as the model says.

Choices, so that the model stays simple and replays are deterministic:

- ``lost_site_grace`` is 0 (never move VMs off a down site): a VM's site is fixed for its life,
  so "exactly once, where it was placed" is checkable while sites come and go. Moving VMs off
  lost sites has its own tests (tests/system/test_lost_sites.py, test_lost_replan.py).
- A step waits until the pool shows the sites as the model does, so a deploy never races the
  controller noticing a fault (``site_timeout`` is short for that), and deploys need one
  reachable site.
- A site's agent tree allows 5 restarts in 30 s (OTP intensity) and each dropped driver
  connection costs one, so the model drops at most 3 per agent incarnation: more would rightly
  take the agent down, which the supervision tests cover.
- Shrinking is off by default (a failing step waits out the convergence deadline, and shrinking
  would replay that many times); set ``WIND_FAULTS_SHRINK=1`` to shrink a failure locally.

Nothing is mocked: the hypervisors are the sim driver's, which is what a site runs here.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from drivers.errors import InvalidState, VMNotFound
from drivers.sim import SimHypervisor
from wind_actors.agent import Agent
from wind_actors.cluster import Cluster, SiteSpec
from wind_actors.errors import NotFound
from wind_actors.testing import wait_for

TOKENS = {"acme": "acme-faults-token-0123456789", "globex": "globex-faults-token-0123456789"}
SITES = ("dc-1", "dc-2", "dc-3")
NAMES = ("web", "db", "cache")
POLICIES = ("always", "on-failure", "never")
#: Seconds the cluster gets to converge after a step. A message lost to a stopped agent or a
#: partition is re-sent after the controller's RESEND_AFTER (5 s): this must be well above it.
CONVERGE_S = 20.0
#: Dropped driver connections per agent incarnation (its tree allows 5 restarts in 30 s).
MAX_DROPS = 3


@dataclass
class AppModel:
    """What the model knows of one application."""

    tenant: str
    name: str
    restart: str
    placed: dict[str, str]                                # instance -> site
    never_crashed: set[str] = field(default_factory=set)  # crashed under restart: never
    undeploying: bool = False

    def vm(self, instance: str) -> str:
        return f"{self.tenant}.{self.name}.{instance}"

    def vms(self) -> dict[str, str]:
        """Returns: ``vm name -> instance``."""
        return {self.vm(i): i for i in self.placed}


class ClusterUnderFaults(RuleBasedStateMachine):
    """A three-site cluster, the faults above, and the model they are checked against."""

    def __init__(self) -> None:
        super().__init__()
        tag = uuid.uuid4().hex[:8]
        # Own endpoints per example: the sim's hypervisors are process-wide by endpoint name.
        self.endpoints = {s: f"faults-{s}-{tag}" for s in SITES}
        sites = [SiteSpec(s, "sim", {"hosts": 2, "endpoint": self.endpoints[s]}, report_interval=0.1)
                 for s in SITES]
        self.cluster = Cluster.start(sites, tenants=TOKENS, tick=0.1, site_timeout=0.6,
                                     lost_site_grace=0)
        self.clients = {t: self.cluster.client(t) for t in TOKENS}
        self.hypervisors = {s: SimHypervisor.named(e) for s, e in self.endpoints.items()}
        self.agent_running = {s: True for s in SITES}
        self.partitioned: set[str] = set()
        self.drops = {s: 0 for s in SITES}
        self.apps: dict[tuple[str, str], AppModel] = {}
        self.gone: set[str] = set()                # VMs of applications undeployed for good
        self.down_while_stopped: set[str] = set()  # crashed while their agent was stopped

    def teardown(self) -> None:
        try:
            for site in self.partitioned:
                self.cluster.controller_node.heal(f"agent@{site}")
            self.cluster.stop()
        finally:
            for endpoint in self.endpoints.values():
                SimHypervisor.forget(endpoint)

    # -- the model's view ---------------------------------------------------------------------

    def reachable(self, site: str) -> bool:
        """The controller can act on ``site``: its agent runs and no partition cuts it off."""
        return self.agent_running[site] and site not in self.partitioned

    def deployed(self) -> list[AppModel]:
        return sorted((a for a in self.apps.values() if not a.undeploying), key=lambda a: (a.tenant, a.name))

    def crashable(self) -> list[tuple[str, str]]:
        """Returns: ``(vm name, site)`` of every VM that runs once the cluster has converged."""
        return sorted((app.vm(i), site) for app in self.deployed() for i, site in app.placed.items()
                      if i not in app.never_crashed and app.vm(i) not in self.down_while_stopped)

    # -- rules: applications --------------------------------------------------------------------

    @initialize(counts=st.tuples(st.integers(1, 3), st.integers(1, 3)),
                restarts=st.tuples(st.sampled_from(POLICIES), st.sampled_from(POLICIES)))
    def deploy_one_app_per_tenant(self, counts: tuple[int, int], restarts: tuple[str, str]) -> None:
        """Something to break from the first step on, for both tenants."""
        for tenant, count, restart in zip(TOKENS, counts, restarts):
            self._deploy(tenant, "web", count, restart, "spread")

    @precondition(lambda self: len(self.apps) < len(TOKENS) * len(NAMES)
                  and any(self.reachable(s) for s in SITES))
    @rule(data=st.data(), count=st.integers(1, 3), restart=st.sampled_from(POLICIES),
          policy=st.sampled_from(["binpack", "spread"]))
    def deploy(self, data: st.DataObject, count: int, restart: str, policy: str) -> None:
        free = [(t, n) for t in TOKENS for n in NAMES if (t, n) not in self.apps]
        tenant, name = data.draw(st.sampled_from(free), label="app")
        self._deploy(tenant, name, count, restart, policy)

    def _deploy(self, tenant: str, name: str, count: int, restart: str, policy: str) -> None:
        descriptor = {"tenant": tenant, "application": name, "placement": {"policy": policy},
                      "components": {"svc": {"image": "img", "vcpus": 1, "memory_mb": 64,
                                             "count": count, "restart": restart}}}
        reply = self.clients[tenant].deploy(descriptor, wait=False)
        placed = {slot["instance"]: slot["site"] for slot in reply["placement"]}
        assert reply["state"] == "deploying" and len(placed) == count, reply
        assert all(self.reachable(s) for s in placed.values()), f"placed on a site that is down: {placed}"
        app = self.apps[(tenant, name)] = AppModel(tenant, name, restart, placed)
        self.gone -= set(app.vms())  # the name is in use again
        event(f"deploy ({restart}, {policy})")

    @precondition(lambda self: bool(self.deployed()))
    @rule(data=st.data())
    def undeploy(self, data: st.DataObject) -> None:
        app = data.draw(st.sampled_from(self.deployed()), label="app")
        reply = self.clients[app.tenant].undeploy(app.name, wait=False)
        assert reply["state"] in ("undeploying", "undeployed"), reply
        app.undeploying = True
        event("undeploy" + ("" if all(self.reachable(s) for s in app.placed.values())
                            else " (a site unreachable)"))

    # -- rules: faults ----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.crashable()))
    @rule(data=st.data())
    def crash_a_vm(self, data: st.DataObject) -> None:
        name, site = data.draw(st.sampled_from(self.crashable()), label="vm")
        try:
            self.hypervisors[site].crash(name, "crashed by the fault model")
        except (VMNotFound, InvalidState) as exc:
            raise AssertionError(f"{name} should run on {site} now, but: {exc}") from None
        app = next(a for a in self.deployed() if name in a.vms())
        if app.restart == "never":
            app.never_crashed.add(app.vms()[name])
        elif not self.agent_running[site]:
            self.down_while_stopped.add(name)  # until a new agent adopts it and brings it back
        where = "running" if self.reachable(site) else "stopped" if not self.agent_running[site] else "cut off"
        event(f"crash a VM ({app.restart}; agent {where})")

    @precondition(lambda self: any(self.agent_running.values()))
    @rule(data=st.data())
    def stop_an_agent(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from([s for s in SITES if self.agent_running[s]]), label="site")
        self.cluster.agents[site].stop()
        self.agent_running[site] = False
        event("stop an agent")

    @precondition(lambda self: not all(self.agent_running.values()))
    @rule(data=st.data())
    def start_an_agent(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from([s for s in SITES if not self.agent_running[s]]), label="site")
        old = self.cluster.agents[site]
        self.cluster.agents[site] = Agent.start(old.node, old.config)  # a new incarnation
        self.agent_running[site] = True
        self.drops[site] = 0
        self.down_while_stopped -= {a.vm(i) for a in self.apps.values() for i, s in a.placed.items()
                                    if s == site}
        event("start an agent")

    @precondition(lambda self: len(self.partitioned) < len(SITES))
    @rule(data=st.data())
    def partition_controller_from_an_agent(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from([s for s in SITES if s not in self.partitioned]), label="site")
        self.cluster.controller_node.partition(f"agent@{site}")
        self.partitioned.add(site)
        event("partition")

    @precondition(lambda self: bool(self.partitioned))
    @rule(data=st.data())
    def heal_a_partition(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from(sorted(self.partitioned)), label="site")
        self.cluster.controller_node.heal(f"agent@{site}")
        self.partitioned.discard(site)
        event("heal")

    @precondition(lambda self: any(self.agent_running[s] and self.drops[s] < MAX_DROPS for s in SITES))
    @rule(data=st.data())
    def drop_a_driver_connection(self, data: st.DataObject) -> None:
        site = data.draw(st.sampled_from([s for s in SITES if self.agent_running[s]
                                          and self.drops[s] < MAX_DROPS]), label="site")
        self.hypervisors[site].drop_connections()
        self.drops[site] += 1
        event("drop a driver connection")

    # -- the check ----------------------------------------------------------------------------------

    @invariant()
    def converges_to_the_model(self) -> None:
        problems: list[str] = []

        def converged() -> bool:
            problems[:] = self.discrepancies()
            return not problems

        try:
            wait_for("the cluster to match the model", converged, CONVERGE_S, interval=0.05)
        except TimeoutError:
            raise AssertionError(f"not converged after {CONVERGE_S} s (agents stopped: "
                                 f"{[s for s in SITES if not self.agent_running[s]]}, cut off: "
                                 f"{sorted(self.partitioned)}):\n  " + "\n  ".join(problems)) from None

    def discrepancies(self) -> list[str]:
        """Returns: every way the cluster differs from the model now (empty: it matches).

        Completed undeploys are moved out of the model here, once their sites are reachable and
        the application is "not found": that is part of converging.
        """
        out = self.pool_health()
        copies: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for site, hv in self.hypervisors.items():
            for info in hv.list("model"):
                copies[info.name].append((site, info.state.value))
        for app in list(self.apps.values()):
            problems = [p for vm, instance in app.vms().items()
                        for p in self.instance_problems(app, vm, instance, copies.pop(vm, []))]
            out += problems
            if app.undeploying and not problems and all(self.reachable(s) for s in app.placed.values()):
                try:
                    self.clients[app.tenant].status(app.name)
                    out.append(f"undeployed {app.tenant}/{app.name} is still listed")
                except NotFound:
                    del self.apps[(app.tenant, app.name)]
                    self.gone |= set(app.vms())
        for vm, found in sorted(copies.items()):
            why = "an undeployed application" if vm in self.gone else "no application of the model"
            out.append(f"{vm} of {why} exists as {found}")
        return out or self.tenant_views()

    def pool_health(self) -> list[str]:
        pool = {row["site"]: row["health"] for row in self.clients["acme"].sites()}
        return [f"site {s} is {pool.get(s, 'missing')} in the pool, the model says {want}"
                for s in SITES if pool.get(s) != (want := "up" if self.reachable(s) else "down")]

    def instance_problems(self, app: AppModel, vm: str, instance: str,
                          found: list[tuple[str, str]]) -> list[str]:
        site = app.placed[instance]
        if len(found) > 1 or any(s != site for s, _ in found):
            return [f"{vm} placed on {site} exists as {found}"]
        state = found[0][1] if found else None
        if app.undeploying:
            if state is not None and self.reachable(site):
                return [f"{vm} of undeployed {app.tenant}/{app.name} is still {state} on {site}"]
            return []
        if not self.agent_running[site]:
            return [] if state is not None else [f"{vm} vanished from {site} while its agent was stopped"]
        want = "crashed" if instance in app.never_crashed else "running"
        return [] if state == want else [f"{vm} (restart {app.restart}) on {site} is {state}, want {want}"]

    def tenant_views(self) -> list[str]:
        """Each tenant sees exactly its applications and VMs, and not the other's."""
        out: list[str] = []
        for tenant, client in self.clients.items():
            mine = {a.name: a for a in self.apps.values() if a.tenant == tenant}
            rows = {row["app"]: row for row in client.status()}
            missing = {a.name for a in mine.values() if not a.undeploying} - set(rows)
            extra = set(rows) - set(mine)
            if missing or extra:
                out.append(f"{tenant} sees {sorted(rows)}; missing {sorted(missing)}, extra {sorted(extra)}")
            for name, row in rows.items():
                seen = {vm["name"]: vm["site"] for vm in row["vms"]}
                if name in mine and seen != {mine[name].vm(i): s for i, s in mine[name].placed.items()}:
                    out.append(f"{tenant}/{name} status shows {seen}, placed {mine[name].placed}")
            for other in self.apps.values():
                if other.tenant != tenant and other.name not in mine:
                    try:
                        client.status(other.name)
                        out.append(f"{tenant} can see {other.tenant}/{other.name}")
                    except NotFound:
                        pass
        return out


ClusterUnderFaults.TestCase.settings = settings(
    max_examples=8, stateful_step_count=15, deadline=None, report_multiple_bugs=False,
    phases=tuple(Phase) if os.environ.get("WIND_FAULTS_SHRINK") else
    (Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestClusterUnderFaults = ClusterUnderFaults.TestCase
