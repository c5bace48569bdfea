"""The pure rules behind the overlay's refusals: which networks a deploy may declare, what a site
removal is refused with, and that removed sites stay removed across a controller restart."""

from __future__ import annotations

from wind_actors.controller._networks import network_problems
from wind_actors.controller._removed import RemovedSites, holders, refusal
from wind_actors.services import Store, VMRecord, parse_descriptor


def desc(name: str, cidr: str, count: int = 1, tenant: str = "acme", network: str = "net"):
    return parse_descriptor(f"""
tenant: {tenant}
application: {name}
networks:
  {network}: {{cidr: {cidr}}}
components:
  node: {{image: x, count: {count}, networks: [{network}]}}
  other: {{image: x, count: 5}}
""")


def vms(app, site: str = "a") -> list[VMRecord]:
    return [VMRecord(f"{app.tenant}.{app.name}.{iid}", app.tenant, app.name, iid, comp.name, site)
            for comp in app.components for iid in comp.instance_ids()]


def test_a_network_declared_again_with_its_own_cidr_is_fine_and_with_another_is_a_problem():
    first = desc("first", "10.0.0.0/24", count=3)
    assert network_problems(desc("same", "10.0.0.0/24"), [first], vms(first)) == []
    (problem,) = network_problems(desc("other", "10.9.0.0/24"), [first], vms(first))
    assert (problem.path, problem.found) == ("networks.net.cidr", "10.9.0.0/24")
    assert problem.allowed.startswith("10.0.0.0/24: tenant 'acme' already has network 'net'")


def test_other_tenants_and_the_app_itself_never_conflict():
    theirs = desc("first", "10.0.0.0/24", tenant="globex")
    assert network_problems(desc("first", "10.9.0.0/24"), [theirs], vms(theirs)) == []
    assert network_problems(desc("x", "10.9.0.0/24"), [desc("x", "10.0.0.0/24")], []) == []


def test_only_nics_on_the_network_count_against_its_cidr():
    # A /29 holds six; 'other' components have no NIC, so 4 + 2 fit and 4 + 3 do not.
    four = desc("four", "10.0.0.0/29", count=4)
    assert network_problems(desc("two", "10.0.0.0/29", count=2), [four], vms(four)) == []
    (problem,) = network_problems(desc("three", "10.0.0.0/29", count=3), [four], vms(four))
    assert "7 NICs" in problem.allowed and "3 from this application, 4 already deployed" in problem.allowed
    assert network_problems(desc("alone", "10.0.0.0/30", count=3), [], [])[0].path == "networks.net.cidr"


def test_the_refusal_names_the_callers_apps_and_only_counts_other_tenants():
    mine, theirs = desc("web", "10.0.0.0/24", count=2), desc("secret", "10.0.0.0/24", tenant="globex")
    held = holders("a", [*vms(mine), *vms(theirs), *vms(desc("elsewhere", "10.1.0.0/24"), site="b")])
    assert set(held) == {("acme", "web"), ("globex", "secret")}
    error = refusal("a", "acme", held)
    text = str(error)
    assert "'web' (7 VM(s): acme.web.node-0, acme.web.node-1, acme.web.other-0" in text
    assert "6 VM(s) of 1 application(s) of other tenants" in text and "secret" not in text
    assert error.recoverable and error.context == {"site": "a"}


def test_a_removed_incarnation_stays_out_after_a_restart_and_a_new_one_rejoins(tmp_path):
    store = Store(tmp_path / "wind.db")
    RemovedSites(store).add("a", node="agent@a", started_at=100.0, tenant="acme", op="op-1")
    again = RemovedSites(store)  # what a restarted controller reads
    assert not again.admits("a", "agent@a", 100.0) and again.ignored("a") == 1
    assert again.admits("b", "agent@b", 100.0)
    assert again.admits("a", "agent@a", 200.0)  # restarted agent: the tombstone goes
    assert again.names() == frozenset() and RemovedSites(store).names() == frozenset()


def test_a_site_removed_while_its_agent_was_unknown_rejoins_on_any_report(tmp_path):
    store = Store(tmp_path / "wind.db")
    removed = RemovedSites(store)
    removed.add("a", node=None, started_at=None, tenant="acme", op="op-1")
    assert removed.get("a")["op"] == "op-1"
    assert removed.admits("a", "agent@a", 5.0) and removed.get("a") is None
