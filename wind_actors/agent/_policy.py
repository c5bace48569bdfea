"""What a VM actor does about its VM: pure decisions, so Hypothesis can drive them.

Restart policies map onto OTP restart types of the VM actor's supervisor: ``always`` is
``permanent``, ``on-failure`` is ``transient``, ``never`` is ``temporary``. The same rule decides
whether a stopped VM is brought back, on the agent (VM actors) and on the controller
(``services.reconcile``), so the two never disagree.
"""

from __future__ import annotations

__all__ = ["RESTART_TYPES", "ACTIVE", "FAILURES", "restart_type", "restart_wanted", "converge_action",
           "stopped_state", "classify_stop"]

#: Descriptor restart policy -> the VM actor's supervisor restart type.
RESTART_TYPES = {"always": "permanent", "on-failure": "transient", "never": "temporary"}

#: Driver states in which a VM holds resources and needs nothing from us.
ACTIVE = frozenset({"running", "paused", "pending", "migrating"})

#: How an unexpected stop is classified when it was a failure (:func:`classify_stop`).
FAILURES = frozenset({"crashed", "removed"})


def restart_type(policy: str) -> str:
    """Returns: the supervisor restart type for a descriptor restart policy.

    Raises:
        ValueError: the policy is not always / on-failure / never.
    """
    try:
        return RESTART_TYPES[policy]
    except KeyError:
        raise ValueError(f"restart policy {policy!r} is not allowed; use "
                         f"{' | '.join(RESTART_TYPES)}") from None


def restart_wanted(policy: str, state: str) -> bool:
    """Returns: whether a VM found in ``state`` is (re)started under ``policy``.

    A VM that never ran (``defined``) is always started; a crashed (or vanished) one under
    ``always`` and ``on-failure``; one shut off cleanly only under ``always``.
    """
    if state == "defined":
        return True
    if state in ("crashed", "removed", "missing"):
        return policy in ("always", "on-failure")
    if state == "shutoff":
        return policy == "always"
    return False


def converge_action(observed: str | None, policy: str, *, first: bool,
                    failed_as: str | None = None) -> str:
    """What a (re)started VM actor does, given what the hypervisor says about its VM.

    Args:
        observed: the driver state value, or None when the VM does not exist.
        policy: the restart policy.
        first: True for the first incarnation (a fresh deploy or an adoption); then a missing
            VM is created whatever the policy.
        failed_as: how the previous incarnation classified the stop it failed on (see
            :func:`stopped_state`), or None if it did not fail on one.

    Returns:
        ``define_start`` (create and boot), ``start`` (boot the defined VM), ``watch`` (it runs:
        just watch it) or ``hold`` (leave it stopped, as the policy says; keep watching).
    """
    if observed is None:
        return "define_start" if first or restart_wanted(policy, "missing") else "hold"
    if observed in ACTIVE or observed == "unknown":
        return "watch"
    return "start" if restart_wanted(policy, stopped_state(observed, failed_as)) else "hold"


def stopped_state(observed: str, failed_as: str | None) -> str:
    """The state a stopped VM counts as for its restart policy.

    Drivers report a VM destroyed behind Wind's back as ``shutoff``, like a clean power-off
    (libvirt maps both to SHUTOFF, a cloud cannot tell them apart). The VM actor that saw the stop
    happen classified it from its event (:func:`classify_stop`); when it failed on a failure, its
    successor is told (``failed_as``) and the VM counts as ``crashed``, whatever the driver says.

    Args:
        observed: the driver state value of a VM that is not active.
        failed_as: the previous incarnation's classification, or None.

    Returns:
        ``crashed`` for a stopped VM whose stop was a failure, else ``observed``.
    """
    if failed_as in FAILURES and observed in ("shutoff", "crashed"):
        return "crashed"
    return observed


def classify_stop(kind: str, detail: str) -> str:
    """The state a VM is in after an event Wind did not ask for.

    Args:
        kind: the event kind (``stopped``, ``crashed``, ``removed``).
        detail: the driver's detail text.

    Returns:
        ``shutoff`` for a clean guest power-off (detail ``shutdown``), ``removed`` when it was
        undefined, else ``crashed`` (a crash, or a kill/destroy behind Wind's back).
    """
    if kind == "removed":
        return "removed"
    if kind == "stopped" and detail == "shutdown":
        return "shutoff"
    return "crashed"
