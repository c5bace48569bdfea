"""The simulator's own promises: size, latency and fault injection configured as data."""

from __future__ import annotations

import queue
import time

import pytest

from drivers import EventKind, VMEvent, VMSpec, VMState, create_driver, errors
from drivers.sim import SimDriver, SimFaults, SimHypervisor


def connected(**config: object) -> SimDriver:
    drv = SimDriver(**config)  # type: ignore[arg-type]
    drv.connect()
    return drv


def test_a_data_centre_of_thousands_of_hosts_reports_aggregate_and_per_host_capacity() -> None:
    drv = connected(hosts=5000, host_cpus=32, host_memory_mb=131072, host_disk_gb=2000)
    for i in range(50):
        drv.define(VMSpec(f"vm-{i}", 8, 32768, disk_gb=100))
        drv.start(f"vm-{i}")
    cap = drv.capacity()
    assert len(cap.hosts) == 5000
    assert cap.total.cpus == 5000 * 32
    assert cap.used.cpus == 50 * 8 and cap.used.disk_gb == 50 * 100
    assert sum(h.used.memory_mb for h in cap.hosts) == cap.used.memory_mb
    assert max(h.used.cpus for h in cap.hosts) <= 32, "no host is over-committed"


def test_start_errors_can_be_recoverable_and_stop_after_n_times() -> None:
    drv = connected(faults={"start_error": "disk not ready", "start_error_recoverable": True,
                            "start_error_times": 2})
    drv.define(VMSpec("vm", 1, 64))
    for _ in range(2):
        with pytest.raises(errors.BackendError, match="disk not ready") as exc:
            drv.start("vm")
        assert exc.value.recoverable is True and exc.value.vm == "vm"
    drv.start("vm")
    assert drv.info("vm").state == VMState.RUNNING


def test_an_unrecoverable_start_error_applies_only_to_matching_vms() -> None:
    drv = connected(faults=SimFaults(start_error="image corrupt", vms="db-*"))
    drv.define(VMSpec("db-1", 1, 64))
    drv.define(VMSpec("web-1", 1, 64))
    with pytest.raises(errors.BackendError) as exc:
        drv.start("db-1")
    assert exc.value.recoverable is False
    drv.start("web-1")
    assert drv.info("db-1").state == VMState.DEFINED


def test_a_vm_crashes_after_the_configured_seconds_and_frees_its_capacity() -> None:
    drv = connected(faults={"crash_after": 0.05})
    got: queue.Queue[VMEvent] = queue.Queue()
    drv.subscribe(got.put)
    drv.define(VMSpec("vm", 2, 256))
    started = time.monotonic()
    drv.start("vm")
    ev = next(e for e in iter(lambda: got.get(timeout=5), None) if e.kind == EventKind.CRASHED)
    assert time.monotonic() - started >= 0.05
    assert ev.vm == "vm" and drv.info("vm").state == VMState.CRASHED
    assert drv.capacity().used.cpus == 0


def test_a_stale_crash_does_not_hit_a_vm_that_was_stopped_in_time() -> None:
    hv = SimHypervisor("stale", faults={"crash_after": 0.2})
    drv = connected(hypervisor=hv)
    got: queue.Queue[VMEvent] = queue.Queue()
    drv.subscribe(got.put)
    drv.define(VMSpec("vm", 1, 64))
    drv.start("vm")
    drv.destroy("vm")
    hv.inject(crash_after=None)
    # A second VM started later crashes on schedule; by then the first one's crash was due too.
    hv.inject(crash_after=0.25)
    drv.define(VMSpec("probe", 1, 64))
    drv.start("probe")
    kinds = []
    while True:
        ev = got.get(timeout=5)
        kinds.append((ev.vm, ev.kind))
        if ev.vm == "probe" and ev.kind == EventKind.CRASHED:
            break
    assert ("vm", EventKind.CRASHED) not in kinds
    assert drv.info("vm").state == VMState.SHUTOFF


def test_latency_is_applied_per_operation() -> None:
    drv = connected(latency={"start": 0.05})
    drv.define(VMSpec("vm", 1, 64))
    t0 = time.monotonic()
    drv.start("vm")
    assert time.monotonic() - t0 >= 0.05
    t0 = time.monotonic()
    drv.info("vm")
    assert time.monotonic() - t0 < 0.05


def test_a_hang_with_a_limit_ends_in_a_recoverable_timeout() -> None:
    drv = connected(faults={"hang_ops": ["define"], "hang_seconds": 0.05})
    with pytest.raises(errors.OperationTimeout) as exc:
        drv.define(VMSpec("vm", 1, 64))
    assert exc.value.recoverable


def test_wrong_credentials_and_unreachable_endpoints_fail_connect_clearly() -> None:
    with pytest.raises(errors.AuthenticationFailed):
        connected(faults={"auth_failure": True})
    with pytest.raises(errors.ConnectionLost) as exc:
        connected(faults={"unreachable": True})
    assert exc.value.recoverable


def test_drivers_of_the_same_endpoint_share_one_hypervisor() -> None:
    SimHypervisor.forget("shared-ep")
    a = create_driver("sim", endpoint="shared-ep", hosts=3)
    b = create_driver("sim", endpoint="shared-ep")
    a.connect()
    b.connect()
    got: queue.Queue[VMEvent] = queue.Queue()
    b.subscribe(got.put)
    a.define(VMSpec("vm", 1, 64))
    assert got.get(timeout=5).vm == "vm"
    assert [v.name for v in b.list()] == ["vm"]
    SimHypervisor.forget("shared-ep")


def test_unknown_fault_settings_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(errors.InvalidSpec, match="allowed"):
        SimDriver(faults={"explode": True})
    with pytest.raises(errors.InvalidSpec, match="hang_ops"):
        SimFaults(hang_ops={"fly"})


def test_pinning_a_vm_to_a_host_through_metadata() -> None:
    drv = connected(hosts=3)
    drv.define(VMSpec("vm", 1, 64, metadata={"host": "host-0002"}))
    drv.start("vm")
    assert drv.info("vm").host == "host-0002"
    with pytest.raises(errors.InvalidSpec):
        drv.define(VMSpec("vm2", 1, 64, metadata={"host": "nowhere"}))
