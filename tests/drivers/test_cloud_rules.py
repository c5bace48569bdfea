"""The cloud driver's pure rules: state map, size choice, event derivation, backoff, error translation."""

from __future__ import annotations

import random

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.types import NodeState

from drivers import EventKind, VMState, errors
from drivers.cloud import CloudConfig, Secret, backoff_delays, events_between, map_state, smallest_fitting, translate
from drivers.cloud._mapping import Size

sizes = st.lists(st.builds(Size, st.text("abcdef", min_size=1, max_size=4), st.integers(0, 64),
                           st.integers(256, 1 << 18), st.integers(0, 500), st.floats(0, 10)), max_size=30)


def test_every_libcloud_node_state_maps_to_a_vm_state_and_unknown_ones_to_unknown() -> None:
    for state in vars(NodeState).values():
        if isinstance(state, str) and not state.startswith("_"):
            assert isinstance(map_state(state), VMState)
    assert map_state(NodeState.RUNNING) is VMState.RUNNING
    assert map_state(NodeState.STOPPED) is VMState.SHUTOFF
    assert map_state(NodeState.ERROR) is VMState.CRASHED
    assert map_state("something-new") is VMState.UNKNOWN


@given(sizes, st.integers(1, 64), st.integers(1, 1 << 18), st.integers(0, 500))
def test_the_chosen_size_fits_and_no_fitting_size_is_smaller(all_sizes: list[Size], vcpus: int, mem: int,
                                                             disk: int) -> None:
    chosen = smallest_fitting(all_sizes, vcpus, mem, disk)
    fitting = [s for s in all_sizes if max(s.vcpus, 1) >= vcpus and s.memory_mb >= mem
               and (disk == 0 or s.disk_gb >= disk)]
    if not fitting:
        assert chosen is None
        return
    assert chosen in fitting
    assert all(chosen.memory_mb <= s.memory_mb for s in fitting)


def test_disk_does_not_rule_out_a_size_when_the_provider_sizes_disks_separately() -> None:
    ebs_only = [Size("t.small", 1, 2048, 0)]
    assert smallest_fitting(ebs_only, 1, 1024, 50) is None
    assert smallest_fitting(ebs_only, 1, 1024, 50, disk_matters=False) == ebs_only[0]


vm_states = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(list(VMState)), max_size=3)


@given(vm_states, vm_states)
def test_events_explain_each_change_and_nothing_else(before: dict[str, VMState], after: dict[str, VMState]) -> None:
    events = events_between(before, after)
    assert len({vm for _, vm in events}) == len(events), "at most one event per VM"
    for kind, vm in events:
        if kind is EventKind.REMOVED:
            assert vm not in after
        else:
            assert before.get(vm) != after[vm]
    assert events_between(after, after) == []


def test_a_resume_is_told_apart_from_a_start() -> None:
    assert events_between({"a": VMState.PAUSED}, {"a": VMState.RUNNING}) == [(EventKind.RESUMED, "a")]
    assert events_between({"a": VMState.SHUTOFF}, {"a": VMState.RUNNING}) == [(EventKind.STARTED, "a")]
    assert events_between({"a": VMState.RUNNING}, {"a": VMState.PENDING}) == []


@given(st.integers(0, 10), st.floats(0.001, 2), st.floats(0.01, 30))
def test_backoff_doubles_up_to_its_cap(retries: int, first: float, cap: float) -> None:
    delays = backoff_delays(retries, first, cap, rng=random.Random(1))
    assert len(delays) == retries
    assert all(0 < d <= cap for d in delays)
    for i, d in enumerate(delays):
        assert d >= min(cap, first * 2 ** i)


@pytest.mark.parametrize("exc, expected", [
    (RateLimitReachedError(), errors.Throttled),
    (BaseHTTPError(503, "RequestLimitExceeded: Request limit exceeded."), errors.Throttled),
    (InvalidCredsError("AuthFailure: nope"), errors.AuthenticationFailed),
    (requests.ConnectionError("refused"), errors.ConnectionLost),
    (requests.Timeout("slow"), errors.OperationTimeout),
    (BaseHTTPError(500, "InternalError"), errors.BackendError),
    (ValueError("odd"), errors.BackendError),
])
def test_backend_exceptions_become_wind_errors_with_context(exc: Exception, expected: type) -> None:
    error = translate(exc, driver="ec2-east", vm="web-1", op="start")
    assert type(error) is expected
    assert error.driver == "ec2-east" and error.vm == "web-1" and error.context["op"] == "start"
    assert error.recoverable is (expected in (errors.Throttled, errors.ConnectionLost, errors.OperationTimeout))


def test_credentials_are_scrubbed_from_translated_messages() -> None:
    error = translate(BaseHTTPError(400, "bad signature for s3cr3t-value"), driver="d", vm=None, op="list",
                      secrets=["s3cr3t-value"])
    assert "s3cr3t-value" not in str(error) and "***" in str(error)


def test_a_secret_never_shows_itself_and_cannot_be_pickled() -> None:
    import pickle

    secret = Secret("hunter2-hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_configuration_is_checked_and_provider_defaults_apply() -> None:
    ec2 = CloudConfig.from_kwargs("EC2", key="k", secret="s")
    assert ec2.capabilities.suspend is False and ec2.power_off == "stop"
    assert "secret" not in repr(ec2).replace("secret=***", "")
    with pytest.raises(errors.InvalidSpec, match="unknown cloud driver settings"):
        CloudConfig.from_kwargs("ec2", passwd="oops")
    with pytest.raises(errors.InvalidSpec, match="power_off"):
        CloudConfig.from_kwargs("ec2", power_off="explode")
    with pytest.raises(errors.InvalidSpec, match="endpoint"):
        CloudConfig.from_kwargs("ec2", endpoint="ftp://x")
