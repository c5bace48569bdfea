"""What the overlay planner tells each agent of its probe peers (pure: ``PeerSets``, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass

from wind_actors.controller._peer_sets import REFRESH_EVERY, RESEND_AFTER, PeerSets


@dataclass(eq=False)
class Agent:
    node: str
    address: str


def key_of(node: str) -> str:
    return f"key-of-{node}".ljust(40, "=")


def agent(site: str, port: int = 1) -> Agent:
    return Agent(f"agent@{site}", f"tcp://10.0.0.{port}:7000")


def told(messages) -> dict[str, tuple[dict, dict]]:
    return {site: (probes, trusted) for site, probes, trusted in messages}


def test_a_joining_site_is_told_its_probes_and_they_are_told_to_trust_it_first():
    agents = {"a": agent("a", 1)}
    sets = PeerSets(key_of)
    assert sets.share("a", agents["a"], (), 0, agents, 0.0) == []  # alone: nothing to tell
    agents["b"] = agent("b", 2)
    messages = sets.share("b", agents["b"], (), 0, agents, 0.1)
    assert [m[0] for m in messages] == ["a", "b"]  # the probed site first, then the prober
    assert told(messages) == {
        "a": ({}, {"agent@b": {"site": "b", "key": key_of("agent@b")}}),
        "b": ({"agent@a": {"endpoint": "tcp://10.0.0.1:7000", "site": "a", "key": key_of("agent@a")}}, {}),
    }
    # the next reports show each agent holding what it was sent: nothing more to tell
    assert sets.share("a", agents["a"], (), 1, agents, 1.0) == []
    assert sets.share("b", agents["b"], (), 1, agents, 1.0) == []


def test_an_agent_short_of_its_set_is_sent_it_again_and_every_site_now_and_then():
    agents = {"a": agent("a", 1), "b": agent("b", 2)}
    sets = PeerSets(key_of)
    sets.share("a", agents["a"], (), 0, agents, 0.0)
    sets.share("b", agents["b"], (), 0, agents, 0.0)
    assert sets.share("a", agents["a"], (), 0, agents, 0.5) == []  # its report predates the set
    assert [m[0] for m in sets.share("a", agents["a"], (), 0, agents, RESEND_AFTER)] == ["a"]
    assert sets.share("a", agents["a"], (), 1, agents, RESEND_AFTER + 1) == []
    assert [m[0] for m in sets.share("a", agents["a"], (), 1, agents, RESEND_AFTER + REFRESH_EVERY)] == ["a"]


def test_a_site_gone_from_the_planner_leaves_and_its_partners_are_told():
    agents = {s: agent(s, i) for i, s in enumerate("abc", 1)}
    sets = PeerSets(key_of)
    for site in "abc":
        sets.share(site, agents[site], (), 0, agents, 0.0)
    assert sets.relation.trusts("a") == {"b", "c"}
    del agents["b"]  # removed from the plan
    messages = told(sets.share("a", agents["a"], (), 2, agents, 1.0))
    assert "b" not in sets.relation and set(messages) == {"a", "c"}
    assert "agent@b" not in messages["a"][0] and "agent@b" not in messages["a"][1]


def test_a_new_agent_incarnation_sends_its_partners_its_new_endpoint():
    agents = {"a": agent("a", 1), "b": agent("b", 2)}
    sets = PeerSets(key_of)
    sets.share("a", agents["a"], (), 0, agents, 0.0)
    sets.share("b", agents["b"], (), 0, agents, 0.0)  # b probes a
    agents["a"] = agent("a", 9)  # a restarted elsewhere
    messages = told(sets.share("a", agents["a"], (), 0, agents, 1.0))
    assert messages["b"][0]["agent@a"]["endpoint"] == "tcp://10.0.0.9:7000"


def test_a_report_costs_only_its_own_sites_set_among_a_thousand():
    sites = [f"s{i:04d}" for i in range(1000)]
    agents: dict[str, Agent] = {}
    sets = PeerSets(key_of)
    for i, site in enumerate(sites):
        agents[site] = agent(site, i % 250)
        messages = sets.share(site, agents[site], (), 0, agents, 0.0)
        assert len(messages) <= 1 + sets.relation.limit  # itself and the sites it probes
    for site, _, _ in [m for s in sites for m in sets.share(s, agents[s], (), 0, agents, 0.0)]:
        raise AssertionError(f"{site} told again with nothing changed")
    for site in sites:
        assert len(sets.relation.probes(site)) <= sets.relation.limit
        assert len(sets.relation.trusts(site)) <= sets.relation.limit + sets.relation.probed_by_limit
