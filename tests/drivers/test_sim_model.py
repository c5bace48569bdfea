"""Hypothesis drives the simulated hypervisor against its pure model, op by op."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from drivers import VMSpec, VMState, errors
from drivers.sim import SimDriver
from drivers.sim import _model as model

NAMES = st.sampled_from(["a", "b", "c"])
OPS = ["start", "shutdown", "destroy", "suspend", "resume", "reboot", "undefine"]


class SimAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.drv = SimDriver(hosts=2, host_cpus=2, host_memory_mb=1024)
        self.drv.connect()
        self.states: dict[str, VMState] = {}

    @rule(name=NAMES, vcpus=st.integers(1, 3))
    def define(self, name: str, vcpus: int) -> None:
        try:
            self.drv.define(VMSpec(name, vcpus, 256))
        except errors.VMExists:
            assert name in self.states
        except errors.CapacityExceeded:
            assert vcpus > 2
        else:
            assert name not in self.states
            self.states[name] = VMState.DEFINED

    @rule(name=NAMES, op=st.sampled_from(OPS))
    def operate(self, name: str, op: str) -> None:
        try:
            getattr(self.drv, op)(name)
        except errors.VMNotFound:
            assert name not in self.states
        except errors.InvalidState:
            assert model.next_state(self.states[name], op) is None
        except errors.CapacityExceeded:
            assert op == "start"
        else:
            after = model.next_state(self.states[name], op)
            assert after is not None
            if op == "undefine":
                del self.states[name]
            else:
                self.states[name] = after

    @invariant()
    def states_match_and_capacity_adds_up(self) -> None:
        seen = {v.name: v.state for v in self.drv.list()}
        assert seen == self.states
        active = [v for v in self.drv.list() if v.state.is_active]
        cap = self.drv.capacity()
        assert cap.used.cpus == sum(v.vcpus for v in active)
        assert all(h.used.fits_in(h.total) for h in cap.hosts)


TestSimAgainstModel = SimAgainstModel.TestCase
TestSimAgainstModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
