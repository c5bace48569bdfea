"""The resource pool: built from site reports, per-host capacity kept, RTT read both ways."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wind_actors.services import Host, Pool, Resources, SiteReport, Slot


def report(name="a", **kw):
    hosts = kw.pop("hosts", (Host("h0", 8, 8192, 100, used_cpus=2, used_memory_mb=1024, vms=2),
                             Host("h1", 16, 16384, 200)))
    return SiteReport(name, kw.pop("driver", "libvirt"), hosts, **kw)


def test_a_site_aggregates_its_hosts_and_keeps_the_breakdown():
    pool = Pool.from_reports([report(region="eu", labels={"storage": "ssd"})])
    site = pool.sites["a"]
    assert site.total == Resources(24, 24576, 300)
    assert site.used == Resources(2, 1024, 0)
    assert site.free == Resources(22, 23552, 300)
    assert site.vm_count == 2 and site.kind == "hypervisor" and site.schedulable
    assert site.host("h1").free == Resources(16, 16384, 200)


def test_a_quota_only_cloud_endpoint_is_one_pseudo_host_of_kind_cloud():
    pool = Pool.from_reports([SiteReport.aggregate("ec2", "libcloud", Resources(64, 262144, 1000))])
    site = pool.sites["ec2"]
    assert site.kind == "cloud" and [h.name for h in site.hosts] == ["*"]


def test_a_new_report_replaces_the_old_one_and_lost_sites_can_be_marked_down_or_removed():
    pool = Pool.from_reports([report(), report("b")])
    pool = pool.with_report(report(hosts=(Host("h0", 4, 4096, 10),)))
    assert pool.sites["a"].total == Resources(4, 4096, 10)
    assert not pool.with_site_health("b", "down").sites["b"].schedulable
    assert set(pool.without_site("b").sites) == {"a"}


def test_rtt_is_read_both_ways_and_the_larger_measurement_wins():
    pool = Pool.from_reports([report("a", rtt_ms={"b": 10}), report("b", rtt_ms={"a": 14, "c": 3}), report("c")])
    assert pool.rtt_ms("a", "b") == pool.rtt_ms("b", "a") == 14
    assert pool.rtt_ms("c", "b") == 3
    assert pool.rtt_ms("a", "c") == 14 + 3  # never measured: bounded through b
    assert pool.rtt_ms("a", "a") == 0
    assert pool.without_site("b").rtt_ms("a", "b") is None
    assert pool.without_site("b").rtt_ms("a", "c") is None  # no relay left


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=2, max_size=12),
       st.data())
def test_an_inferred_rtt_is_an_upper_bound_and_a_measured_one_is_exact(points, data):
    """Sites at points of a plane, RTT their distance (a metric, as RTTs nearly are); each
    site measures a random few: every answer is the distance when measured, else at least it."""
    names = [f"s{i}" for i in range(len(points))]

    def dist(i, j):
        return math.dist(points[i], points[j])

    reports = []
    measured = set()
    for i, name in enumerate(names):
        picks = data.draw(st.sets(st.sampled_from(range(len(names))), max_size=3))
        measured |= {(i, j) for j in picks if j != i} | {(j, i) for j in picks if j != i}
        reports.append(report(name, rtt_ms={names[j]: dist(i, j) for j in picks if j != i}))
    pool = Pool.from_reports(reports)
    for i in range(len(names)):
        for j in range(len(names)):
            rtt = pool.rtt_ms(names[i], names[j])
            if i == j:
                assert rtt == 0
            elif (i, j) in measured:
                assert rtt == pytest.approx(dist(i, j))
            elif rtt is not None:
                assert rtt >= dist(i, j) - 1e-9


def test_reserving_and_releasing_slots_moves_usage_on_the_right_host():
    pool = Pool.from_reports([report()])
    slot = Slot("w-0", "w", "a", "h1", Resources(4, 2048, 20))
    reserved = pool.with_usage([slot, slot])
    assert reserved.sites["a"].host("h1").used == Resources(8, 4096, 40)
    assert reserved.sites["a"].vm_count == 4
    assert reserved.with_usage([slot, slot], sign=-1) == pool


def test_reports_cross_the_wire_as_plain_data():
    original = report(region="eu", labels={"k": "v"}, rtt_ms={"b": 3.5}, health="degraded")
    assert SiteReport.from_mapping(original.to_mapping()) == original


def test_the_sites_table_has_a_row_per_site_with_capacity_use_vms_and_health():
    rows = Pool.from_reports([report("b"), report("a", health="down")]).table()
    assert [r["site"] for r in rows] == ["a", "b"]
    assert rows[0]["health"] == "down" and rows[0]["vms"] == 2
    assert rows[0]["capacity"] == {"cpus": 24, "memory_mb": 24576, "disk_gb": 300}


def test_a_report_without_hosts_or_with_an_unknown_health_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        SiteReport("a", "sim", ())
    with pytest.raises(ValueError, match="health"):
        report(health="fine")
