"""No overlay push grows past the frame limit: full states and diffs go in parts, joined whole.

The codec: a site's state (or diff) far over a small frame limit is cut into parts that each fit
a frame and join back into exactly what was cut. The planner: pushing a site of many NICs sends
parts, each under its node's limit. The agent (its realizer stood in for, so no root is needed):
it applies a push once every part is in, and a part lost (a gap, a push that never finished, or
an overdue part) leaves it at the state it held, reporting that it wants the full state; the
full state sent again then applies. tests/overlay_system/test_overlay_system.py runs the overlay
in real namespaces; test_a_site_over_the_frame_limit_converges_in_parts_over_the_wire here does
too, with a small frame limit (root).
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
from system_harness import wait_for
from test_overlay_work import Harness, deploy

import wind_actors.agent._overlay as agent_overlay
from overlay import Nic, RealizeReport, Site, TenantNetwork, apply, diff, plan
from wind_actors._chunks import budget_of, packed_size
from wind_actors.agent._overlay import (OverlayActor, OverlayPush, OverlayReport, decode_diff, decode_state,
                                        encode_diff, encode_state, push_parts)
from wind_actors.agent._overlay_parts import PART_TIMEOUT, join_change, split_change
from wind_actors.runtime import Codec

FRAME = 16 * 1024
SITES = [Site("a", "192.0.2.1"), Site("b", "192.0.2.2")]
NET = TenantNetwork("acme", "big", "10.8.0.0/16")


def nics(count: int, start: int = 0) -> list[Nic]:
    return [Nic(f"acme.big.web-{i:05d}", "ab"[i % 2], "acme", "big", "02:00:00:%02x:%02x:%02x" % (
        i >> 16 & 255, i >> 8 & 255, i & 255)) for i in range(start, start + count)]


def wire_size(push: OverlayPush) -> int:
    return len(Codec().encode(push))


def test_a_state_over_the_frame_limit_is_cut_into_parts_that_fit_and_join_back_exactly():
    state = plan(SITES, [NET], nics(2000)).sites["a"]
    encoded = encode_state(state)
    assert packed_size(encoded) > 4 * FRAME
    parts = push_parts("a", "e1", 7, None, encoded, budget_of(FRAME))
    assert len(parts) > 4 and [p.part for p in parts] == list(range(len(parts)))
    assert all(p.parts == len(parts) and p.generation == 7 and p.base is None for p in parts)
    assert max(wire_size(p) for p in parts) <= FRAME
    codec = Codec()
    wired = [codec.decode(codec.encode(p)).change for p in parts]  # sequences arrive as tuples
    assert decode_state(join_change(wired, full=True)) == state


def test_a_diff_over_the_frame_limit_is_cut_too_and_applies_to_the_same_new_state():
    old = plan(SITES, [NET, TenantNetwork("acme", "small", "10.7.0.0/24")],
               [*nics(800), Nic("x", "a", "acme", "small", "02:00:00:ff:00:01")])
    new = plan(SITES, [NET], nics(1600), previous=old.allocations)
    change = diff(old.sites["a"], new.sites["a"])
    assert change.update and change.remove
    parts = push_parts("a", "e1", 8, 7, encode_diff(change), budget_of(FRAME))
    assert len(parts) > 2 and max(wire_size(p) for p in parts) <= FRAME
    joined = decode_diff(join_change([p.change for p in parts], full=False))
    assert apply(old.sites["a"], joined) == new.sites["a"]


def test_a_small_change_stays_one_part_as_it_always_was():
    state = plan(SITES, [NET], nics(10)).sites["a"]
    (only,) = push_parts("a", "e1", 1, None, encode_state(state), budget_of(FRAME))
    assert (only.part, only.parts) == (0, 1) and only.change == encode_state(state)
    assert split_change(encode_state(state), budget_of(FRAME), full=True) == [encode_state(state)]


def test_the_planner_pushes_a_site_of_many_nics_in_parts_under_its_frame_limit(tmp_path):
    h = Harness(tmp_path, max_frame_bytes=FRAME)
    try:
        deploy(h.store, "acme", "big", "net", ["a"] * 250 + ["b"] * 5)
        h.replan(("acme", "big"))
        diffs = [p for p in h.agents["a"].pushes if p.base is not None]  # from its empty state
        assert len(diffs) > 1 and max(wire_size(p) for p in diffs) <= FRAME
        assert apply(decode_state(h.agents["a"].pushes[0].change),
                     decode_diff(join_change([p.change for p in diffs], full=False))) == \
            h.planner.plan.get().sites["a"]
        h.planner.agents.get()["a"].last_full = float("-inf")  # past FULL_STATE_EVERY, no waiting
        h.report("a", "192.0.2.1")  # holds nothing: it is sent its full state, in parts
        full = [p for p in h.agents["a"].pushes if p.base is None and p.parts > 1]
        assert full and max(wire_size(p) for p in full) <= FRAME
        assert decode_state(join_change([p.change for p in full[-full[-1].parts:]], full=True)) == \
            h.planner.plan.get().sites["a"]
        assert h.stats()["parts_sent"] > h.stats()["sites_pushed"]
    finally:
        h.stop()
        h.store.close()


# -- the agent, its realizer stood in for ------------------------------------------------------------


class StandInRealizer:
    """Records what it was asked to realize or apply (no kernel)."""

    made: list[StandInRealizer] = []

    def __init__(self, netns) -> None:
        self.calls: list[tuple[str, object]] = []
        StandInRealizer.made.append(self)

    def realize(self, state):
        self.calls.append(("realize", state))
        return RealizeReport()

    def apply(self, change):
        self.calls.append(("apply", change))
        return RealizeReport()

    def owned_devices(self):
        return {}

    def close(self) -> None:
        pass


class StandInPlanner:
    def __init__(self) -> None:
        self.reports: list[OverlayReport] = []

    def tell(self, msg) -> None:
        if isinstance(msg, OverlayReport):
            self.reports.append(msg)


class AgentNode:
    name = "agent@a"
    address = "tcp://127.0.0.1:1"

    def __init__(self) -> None:
        self.planner = StandInPlanner()

    def ref(self, name):
        return self.planner

    def register(self, name, ref, access=None):
        return SimpleNamespace(name=name, node_name=self.name)

    def connect(self, *args, **kw) -> None:
        pass


@pytest.fixture
def agent(monkeypatch):
    monkeypatch.setattr(agent_overlay, "Realizer", StandInRealizer)
    node = AgentNode()
    ref = OverlayActor.start(node, "a", "controller@test", "192.0.2.1", None)
    actor = SimpleNamespace(ref=ref, node=node,
                            realizer=lambda: StandInRealizer.made[-1],
                            held=lambda: ref.proxy().held.get())
    yield actor
    ref.stop()


def pushes(state_nics: int, generation: int, base=None, old=None):
    """The parts of a push of site a's state with ``state_nics`` NICs (or the diff from ``old``)."""
    new = plan(SITES, [NET], nics(state_nics), previous=old.allocations if old else None)
    change = encode_state(new.sites["a"]) if base is None else encode_diff(diff(old.sites["a"], new.sites["a"]))
    return new, push_parts("a", "e1", generation, base, change, budget_of(FRAME))


def tell_all(actor, parts) -> None:
    for p in parts:
        actor.ref.tell(p)
    actor.ref.ask("describe")  # FIFO: every part was handled


def test_the_agent_applies_a_push_once_all_its_parts_are_in(agent):
    first, parts = pushes(1000, 1)
    assert len(parts) > 2
    tell_all(agent, parts[:-1])
    assert agent.realizer().calls == [] and agent.held().generation is None
    tell_all(agent, parts[-1:])
    assert agent.realizer().calls == [("realize", first.sites["a"])]
    assert agent.held().generation == 1 and agent.node.planner.reports[-1].want_state is False

    second, parts = pushes(1200, 2, base=1, old=first)
    assert len(parts) > 1
    tell_all(agent, parts)
    kind, change = agent.realizer().calls[-1]
    assert kind == "apply" and apply(first.sites["a"], change) == second.sites["a"]
    assert agent.held().generation == 2 and agent.held().state == second.sites["a"]


def test_a_lost_part_leaves_the_agent_at_its_old_state_asking_for_the_full_state(agent):
    first, parts = pushes(1000, 1)
    tell_all(agent, parts)
    second, diff_parts = pushes(1300, 2, base=1, old=first)
    assert len(diff_parts) > 2
    tell_all(agent, [diff_parts[0], *diff_parts[2:]])  # part 1 lost on the way
    assert agent.realizer().calls == [("realize", first.sites["a"])]  # nothing of it applied
    held = agent.held()
    assert held.generation == 1 and held.state == first.sites["a"]
    assert agent.node.planner.reports[-1].want_state is True
    assert agent.ref.ask("describe")["pushes_lost"] == 1

    # The planner answers with the full state (the same generation, in parts): it applies.
    _, full = pushes(1300, 2, old=first)
    tell_all(agent, full)
    assert agent.realizer().calls[-1] == ("realize", second.sites["a"])
    assert agent.held().generation == 2 and agent.node.planner.reports[-1].want_state is False


def test_a_push_that_never_finishes_is_dropped_by_the_next_or_when_overdue(agent, monkeypatch):
    first, parts = pushes(1000, 1)
    tell_all(agent, parts[:2])  # its last parts never come; the next push begins
    second, again = pushes(1100, 2)
    tell_all(agent, again)
    assert agent.realizer().calls == [("realize", second.sites["a"])]
    assert agent.ref.ask("describe")["pushes_lost"] == 1

    _, third = pushes(1200, 3)
    tell_all(agent, third[:1])  # then nothing more: on a tick after PART_TIMEOUT it gives up
    later = time.monotonic() + PART_TIMEOUT + 1
    monkeypatch.setattr(agent_overlay.time, "monotonic", lambda: later)
    agent.ref.tell(agent_overlay._Tick())
    agent.ref.ask("describe")
    assert agent.node.planner.reports[-1].want_state is True
    assert agent.held().generation == 2 and agent.ref.ask("describe")["pushes_lost"] == 2
    tell_all(agent, third[1:])  # its late parts, if any come, are not applied
    assert agent.held().generation == 2


# -- over the wire, into real namespaces (root) ------------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_site_over_the_frame_limit_converges_in_parts_over_the_wire(tmp_path):
    from overlay.testing import NamespaceLab
    from wind_actors.agent import Agent
    from wind_actors.cluster import Cluster
    from wind_actors.config import AgentConfig
    from wind_actors.controller._overlay import replan_now
    from wind_actors.runtime import Node

    frame = 32 * 1024
    with NamespaceLab(underlay_cidr="172.31.42.0/24") as lab, \
            Cluster.start([], tenants={"acme": "acme-token-0123456789"}, max_frame_bytes=frame) as cluster:
        for site in "ab":
            ip = lab.add_site(site).underlay_ip
            node = Node.start(cluster._node_config(f"agent@{site}",
                                                   {"controller@local": cluster.controller_node.address}))
            cluster._nodes.append(node)  # stopped with the cluster
            cluster.agents[site] = Agent.start(node, AgentConfig(
                site=site, controller="controller@local", driver="sim", driver_options={"hosts": 1},
                report_interval=0.2, underlay_ip=ip, overlay_netns=lab.site_netns(site)))
        store = cluster.controller.store
        planner = cluster.controller_node.whereis("overlay")
        wait_for(lambda: set(planner.proxy().plan.get().sites) == {"a", "b"}, 15, "both sites in the plan")
        deploy(store, "acme", "big", "net", ["a"] * 700 + ["b"] * 700)
        replan_now(cluster.controller_node, [("acme", "big")])
        the_plan = planner.proxy().plan.get()
        seg_a = the_plan.sites["a"].segments
        assert packed_size(encode_state(the_plan.sites["a"])) > frame  # could never be one push

        def fdb(site: str) -> set[str]:
            (vxlan,) = [s.vxlan for s in the_plan.sites[site].segments.values()]
            out = lab.run(lab.site_netns(site), ["bridge", "fdb", "show", "dev", vxlan], check=False).stdout
            return {line.split()[0] for line in out.splitlines() if " dst " in line}

        remote_b = set(next(iter(seg_a.values())).members["b"].macs)
        wait_for(lambda: remote_b <= fdb("a"), 20, "every MAC at b in a's FDB")
        stats = planner.proxy().stats.get()
        assert stats["parts_sent"] > stats["sites_pushed"]
        assert cluster.controller_node.stats()["counters"].get("oversized_sent", 0) == 0

        overlay_a = cluster.agents["a"].node.whereis("overlay.a")
        wait_for(lambda: overlay_a.ask("describe")["generation"] == planner.proxy().generation.get()["a"], 10,
                 "a to hold the planner's generation")
        assert overlay_a.ask("describe")["pushes_lost"] == 0

        # A part lost on the way: a stays where it was, asks for its full state, and gets it.
        agents = planner.proxy().agents.get()
        agents["a"].ref = DropSecondPart(agents["a"].ref)
        deploy(store, "acme", "more", "net", ["b"] * 100)
        replan_now(cluster.controller_node, [("acme", "more")])
        new_b = planner.proxy().plan.get().sites["a"].segment_for("acme", "net").members["b"].macs
        wait_for(lambda: new_b <= fdb("a"), 20, "the new MACs at b in a's FDB")
        assert agents["a"].ref.dropped == 1
        assert overlay_a.ask("describe")["pushes_lost"] == 1


class DropSecondPart:
    """The planner's ref to an agent, losing the second part of the first push in parts."""

    def __init__(self, ref) -> None:
        self.ref, self.node_name, self.dropped = ref, ref.node_name, 0

    def tell(self, msg) -> None:
        if isinstance(msg, OverlayPush) and msg.part == 1 and not self.dropped:
            self.dropped += 1
            return
        self.ref.tell(msg)

    def __eq__(self, other) -> bool:  # the agent's reports name the real ref
        return self.ref == (other.ref if isinstance(other, DropSecondPart) else other)

    def __hash__(self) -> int:
        return hash(self.ref)
