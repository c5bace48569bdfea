"""Reconciliation: (desired, observed) -> place/start/stop/ignore/lost/adopt, none lost, none twice."""

from __future__ import annotations

from wind_actors.services import DesiredVM, ObservedVM, reconcile


def kinds(result) -> dict[str, list[tuple[str, str | None]]]:
    return {k: [(a.name, a.site) for a in getattr(result, k)] for k in result.KINDS if getattr(result, k)}


def test_a_restarted_controller_adopts_running_vms_and_starts_only_the_missing_one():
    desired = [DesiredVM("t.app.w-0", "a"), DesiredVM("t.app.w-1", "b"), DesiredVM("t.app.w-2", "b")]
    observed = [ObservedVM("t.app.w-0", "a", "running"), ObservedVM("t.app.w-1", "b", "running")]
    result = reconcile(desired, observed, sites_up={"a", "b"})
    assert kinds(result) == {"adopt": [("t.app.w-0", "a"), ("t.app.w-1", "b")],
                             "start": [("t.app.w-2", "b")]}


def test_tracked_running_vms_are_left_alone_and_the_result_is_converged():
    result = reconcile([DesiredVM("v", "a")], [ObservedVM("v", "a", "running")], sites_up={"a"}, tracked={"v"})
    assert kinds(result) == {"ignore": [("v", "a")]} and result.converged


def test_unplaced_vms_go_to_the_scheduler():
    result = reconcile([DesiredVM("v")], [], sites_up={"a"})
    assert kinds(result) == {"place": [("v", None)]}


def test_a_vm_running_before_its_placement_was_recorded_is_adopted_not_placed_again():
    result = reconcile([DesiredVM("v")], [ObservedVM("v", "b", "running")], sites_up={"b"})
    assert kinds(result) == {"adopt": [("v", "b")]}


def test_vms_on_a_site_that_is_not_up_are_lost_not_started_elsewhere():
    result = reconcile([DesiredVM("v", "gone")], [], sites_up={"a"})
    assert kinds(result) == {"lost": [("v", "gone")]}
    assert result.converged  # lost alone asks the reconciler for no action; the controller decides


def test_a_second_copy_is_stopped_and_the_one_on_the_placed_site_kept():
    observed = [ObservedVM("v", "a", "running"), ObservedVM("v", "b", "running")]
    result = reconcile([DesiredVM("v", "b")], observed, sites_up={"a", "b"}, tracked={"v"})
    assert kinds(result) == {"stop": [("v", "a")], "ignore": [("v", "b")]}


def test_a_vm_found_on_another_site_is_adopted_there():
    result = reconcile([DesiredVM("v", "a")], [ObservedVM("v", "b", "running")], sites_up={"a", "b"})
    assert kinds(result) == {"adopt": [("v", "b")]}
    assert "placed at a" in result.adopt[0].reason


def test_restart_policies_decide_what_happens_to_stopped_and_crashed_vms():
    desired = [DesiredVM("always-off", "a", "always"), DesiredVM("onf-off", "a", "on-failure"),
               DesiredVM("onf-crashed", "a", "on-failure"), DesiredVM("never-crashed", "a", "never"),
               DesiredVM("never-defined", "a", "never"), DesiredVM("unknown", "a")]
    observed = [ObservedVM("always-off", "a", "shutoff"), ObservedVM("onf-off", "a", "shutoff"),
                ObservedVM("onf-crashed", "a", "crashed"), ObservedVM("never-crashed", "a", "crashed"),
                ObservedVM("never-defined", "a", "defined"), ObservedVM("unknown", "a", "unknown")]
    result = reconcile(desired, observed, sites_up={"a"})
    assert kinds(result) == {
        "start": [("always-off", "a"), ("never-defined", "a"), ("onf-crashed", "a")],
        "ignore": [("never-crashed", "a"), ("onf-off", "a"), ("unknown", "a")],
    }


def test_wind_vms_nobody_wants_are_stopped_and_foreign_vms_never_touched():
    observed = [ObservedVM("t.old.w-0", "a", "running"), ObservedVM("t.old.w-1", "a", "shutoff"),
                ObservedVM("postgres", "a", "running", managed=False)]
    result = reconcile([], observed, sites_up={"a"})
    assert kinds(result) == {"stop": [("t.old.w-0", "a"), ("t.old.w-1", "a")], "ignore": [("postgres", "a")]}


def test_a_vm_desired_stopped_is_stopped_wherever_it_runs():
    result = reconcile([DesiredVM("v", "a", state="stopped")], [ObservedVM("v", "a", "running")], sites_up={"a"})
    assert kinds(result) == {"stop": [("v", "a")], "ignore": [("v", "a")]}


def test_counts_and_iteration_cover_every_action():
    result = reconcile([DesiredVM("x", "a"), DesiredVM("y")], [ObservedVM("z", "a", "running")], sites_up={"a"})
    assert result.counts() == {"place": 1, "start": 1, "stop": 1, "ignore": 0, "lost": 0, "adopt": 0}
    assert len(list(result)) == 3
