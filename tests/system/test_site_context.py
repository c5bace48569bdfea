"""SiteContext: which VMs already have an owner, and the current driver actor (no sockets)."""

from __future__ import annotations

import itertools

from supervisors import WatchedActor
from wind_actors.agent._context import SiteContext


class _Idle(WatchedActor):
    pass


def test_a_vm_whose_actor_crashed_and_is_being_restarted_still_has_an_owner():
    """Regression (found by property_tests/test_cluster_faults.py): while a crashed VM actor
    waited out its restart backoff, the site started a second actor for the same VM."""
    ctx = SiteContext(node=None, site="s", driver_kind="sim", driver_options={})
    first = _Idle.start()
    ctx.add_vm("vm-1", first)
    ctx.drop_vm("vm-1", first, restarting=True)
    first.stop()
    assert ctx.vm_ref("vm-1") is None and ctx.has_vm("vm-1")

    successor = _Idle.start()
    assert ctx.add_vm("vm-1", successor) == 1  # the restart is counted
    ctx.drop_vm("vm-1", successor)  # stopped on purpose: no successor is coming
    assert not ctx.has_vm("vm-1")


_SERIALS = itertools.count()


class _Answers(WatchedActor):
    def __init__(self) -> None:
        super().__init__()
        self.serial = next(_SERIALS)

    def whoami(self) -> int:
        return self.serial


def test_the_driver_proxy_is_built_once_per_driver_incarnation_and_follows_a_restart():
    ctx = SiteContext(node=None, site="s", driver_kind="sim", driver_options={})
    first = ctx.set_driver(_Answers.start())
    proxy = ctx.driver()
    assert ctx.driver() is proxy  # not rebuilt per call (a Pykka proxy costs ~0.3 ms)
    answer = proxy.whoami().get(timeout=5)
    first.stop()
    second = ctx.set_driver(_Answers.start())  # what the supervisor's restart does
    try:
        assert ctx.driver() is not proxy
        assert ctx.driver().whoami().get(timeout=5) != answer
    finally:
        second.stop()
