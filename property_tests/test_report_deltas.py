"""Hypothesis stateful: delta site reports converge to the agent's truth through any fault.

The agent's ``ReportSender`` and the controller's ``ReportReceiver`` talk over two lossy
channels that Hypothesis drops from, duplicates on and reorders; VMs appear, change and go;
either side restarts (a restarted agent keeps its VMs: they live in the hypervisor). Whatever
happened, once the network behaves for a few report intervals the controller's view equals the
agent's truth, and no part ever exceeds its byte budget (bar a single oversized row).
"""

from __future__ import annotations

import msgpack
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from wind_actors._reports import ReportReceiver, ReportSender, split_parts

NAMES = [f"acme.web.vm-{i}" for i in range(12)]
STATES = ["pending", "running", "stopped", "failed", "crashed"]
BUDGET = 300  # bytes: small, so reports of a few VMs are cut into several parts


def _report(cpus: int) -> dict:
    return {"name": "dc-1", "health": "up", "hosts": [{"host": "h0", "used_cpus": cpus}],
            "rtt_ms": {}, "reported_at": 0.0}


class DeltaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0
        self.sender = self._new_sender()
        self.receiver = ReportReceiver()
        self.to_controller: list = []
        self.to_agent: list = []

    def _new_sender(self) -> ReportSender:
        self.epochs += 1
        return ReportSender(f"epoch-{self.epochs:04d}", budget=BUDGET)

    # -- the agent's truth changes ------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), state=st.sampled_from(STATES), restarts=st.integers(0, 3))
    def vm_changes(self, name, state, restarts):
        self.sender.merge({"name": name, "state": state, "host": None, "restarts": restarts,
                           "detail": "x" * restarts * 10})

    @rule(name=st.sampled_from(NAMES))
    def vm_goes(self, name):
        self.sender.merge({"name": name, "state": "removed"})

    @rule(names=st.sets(st.sampled_from(NAMES), max_size=6))
    def fresh_inventory(self, names):
        self.sender.replace_all({"name": n, "state": "running", "host": "h0", "managed": True}
                                for n in sorted(names))

    @rule(cpus=st.integers(0, 4))
    def capacity_changes(self, cpus):
        self.sender.set_report(_report(cpus))

    # -- the agent reports ----------------------------------------------------------------------

    def _send(self, parts) -> None:
        for p in parts:
            assert p.parts == len(parts)
            self.to_controller.append(p)

    @rule()
    def quick_report(self):
        self._send(self.sender.delta(since_ack=False))

    @rule()
    def slow_report(self):
        s = self.sender
        self._send(s.resync() if s.acked is None or s.resync_wanted else s.delta(since_ack=True))

    # -- the network -----------------------------------------------------------------------------

    @rule(data=st.data())
    def deliver_to_controller(self, data):
        if self.to_controller:
            i = data.draw(st.integers(0, len(self.to_controller) - 1), label="reorder")
            got = self.receiver.receive(self.to_controller.pop(i))
            if got.ack is not None:
                self.to_agent.append(got.ack)

    @rule(data=st.data())
    def deliver_to_agent(self, data):
        if self.to_agent:
            i = data.draw(st.integers(0, len(self.to_agent) - 1), label="reorder")
            self.sender.on_ack(self.to_agent.pop(i))

    @rule(data=st.data(), to_controller=st.booleans())
    def drop(self, data, to_controller):
        queue = self.to_controller if to_controller else self.to_agent
        if queue:
            queue.pop(data.draw(st.integers(0, len(queue) - 1)))

    @rule(data=st.data(), to_controller=st.booleans())
    def duplicate(self, data, to_controller):
        queue = self.to_controller if to_controller else self.to_agent
        if queue:
            queue.append(queue[data.draw(st.integers(0, len(queue) - 1))])

    # -- restarts --------------------------------------------------------------------------------

    @rule()
    def agent_restarts(self):
        old = self.sender
        self.sender = self._new_sender()
        self.sender.replace_all(old.vms.values())  # the VMs outlive the agent in the hypervisor
        if old.report is not None:
            self.sender.set_report(old.report)

    @rule()
    def controller_restarts(self):
        self.receiver = ReportReceiver()

    # -- properties ------------------------------------------------------------------------------

    @invariant()
    def a_view_is_always_some_state_the_agent_had(self):
        # Partial reports are never applied: every VM in the view has a row with a name.
        assert all(row["name"] == name for name, row in self.receiver.vms.items())

    def teardown(self):
        # The network behaves from now on: whatever is in flight arrives, then a few intervals.
        for part in self.to_controller:
            got = self.receiver.receive(part)
            if got.ack is not None:
                self.sender.on_ack(got.ack)
        for ack in self.to_agent:
            self.sender.on_ack(ack)
        for _ in range(3):
            self.slow_report()
            queue, self.to_controller = self.to_controller, []
            for part in queue:
                got = self.receiver.receive(part)
                if got.ack is not None:
                    self.sender.on_ack(got.ack)
        assert self.receiver.epoch == self.sender.epoch
        assert self.receiver.vms == self.sender.vms
        assert self.receiver.report == self.sender.report
        assert self.sender.acked == self.sender.seq
        # idle now: the slow report is a keepalive with nothing in it
        keepalive = self.sender.delta(since_ack=True)
        assert len(keepalive) == 1 and not keepalive[0].vms and keepalive[0].report is None


DeltaMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestDeltaReports = DeltaMachine.TestCase


def test_parts_stay_under_the_budget_and_keep_every_row():
    rows = [{"name": f"vm-{i}", "state": "running", "detail": "d" * (i % 50)} for i in range(500)]
    parts = split_parts("e", 3, 4, rows, [f"gone-{i}" for i in range(100)], {"hosts": []}, 2048)
    assert len(parts) > 10 and all(p.parts == len(parts) for p in parts)
    for p in parts:
        assert len(msgpack.packb([list(p.vms), list(p.removed), p.report])) <= 2048
    assert [r for p in parts for r in p.vms] == rows
    assert sum(len(p.removed) for p in parts) == 100


def test_an_idle_site_sends_a_keepalive_not_its_inventory():
    sender, receiver = ReportSender("e"), ReportReceiver()
    sender.replace_all({"name": f"vm-{i}", "state": "running"} for i in range(1000))
    sender.set_report(_report(1))
    for part in sender.resync():
        got = receiver.receive(part)
    sender.on_ack(got.ack)
    sender.replace_all({"name": f"vm-{i}", "state": "running"} for i in range(1000))  # same again
    sender.set_report(_report(1))
    assert sender.delta(since_ack=False) == []
    (keepalive,) = sender.delta(since_ack=True)
    assert keepalive.vms == () and keepalive.removed == () and keepalive.report is None
    assert len(msgpack.packb([keepalive.epoch, keepalive.base, keepalive.seq])) < 64
    assert receiver.receive(keepalive).ack.seq == sender.seq
