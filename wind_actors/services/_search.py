"""Complete backtracking search, run only when the greedy pass fails.

Greedy placement can paint itself into a corner (bin packing over several dimensions, rules
between components), so before reporting failure the scheduler searches every assignment of
instances to hosts, within a work budget. Two symmetries keep it small without losing solutions:

* instances of one component are interchangeable, so their slots are taken in non-decreasing
  ``(site, host)`` order;
* hosts of one site with the same free resources and none of this application's instances are
  interchangeable, so only the first of them is tried.

The search is iterative (no recursion limit) and leaves the solution applied to the ``AppRun``.
"""

from __future__ import annotations

from typing import Callable

from ._constraints import AppRun, CompPlan

__all__ = ["search"]


def _candidates(run: AppRun, plan: CompPlan, bound: tuple[int, int],
                key: Callable[[CompPlan, int], tuple]) -> tuple[list[tuple[int, int]], int]:
    st = run.state
    out: list[tuple[tuple, int, int]] = []
    work = 0
    for s in plan.candidates:
        if s < bound[0]:
            continue
        work += 1
        if run.site_reason(plan, s) is not None:
            continue
        if st.fc[s] < plan.c or st.fm[s] < plan.m or st.fd[s] < plan.d:
            continue
        seen: set[tuple[int, int, int]] = set()
        site_key = key(plan, s)
        for h in range(bound[1] if s == bound[0] else 0, len(st.hc[s])):
            work += 1
            if not run.fits(plan, s, h) or not run.host_ok(plan, s, h):
                continue
            if (s, h) not in run.touched:
                sig = (st.hc[s][h], st.hm[s][h], st.hd[s][h])
                if sig in seen:
                    continue
                seen.add(sig)
            out.append((site_key, s, h))
    out.sort()
    return [(s, h) for _, s, h in out], work


def search(run: AppRun, todo: list[tuple[str, str]], budget: int,
           key: Callable[[CompPlan, int], tuple]) -> bool | None:
    """Find a complete placement of ``todo`` (``(instance, component)`` in placing order).

    Args:
        run: the application run, with nothing of ``todo`` placed.
        todo: the instances to place; instances of one component must be contiguous.
        budget: work units (site and host evaluations) before giving up.
        key: orders candidate sites, best first (the greedy pass's preference).

    Returns:
        True when found (left applied to ``run``), False when no placement exists, None when the
        budget ran out first (``run`` is rolled back in both of those cases).
    """
    if not todo:
        return not run.final_violations()
    plans = [run.plans[comp] for _, comp in todo]
    spent = 0
    # frame: [candidates, next index, slot applied by this frame or None]
    frames: list[list] = []

    def open_frame(k: int) -> None:
        nonlocal spent
        bound = (0, 0)
        if k > 0 and todo[k - 1][1] == todo[k][1]:
            _, s, h = run.slots[todo[k - 1][0]]
            bound = (s, h)
        cands, work = _candidates(run, plans[k], bound, key)
        spent += work
        frames.append([cands, 0, None])

    open_frame(0)
    while frames:
        k = len(frames) - 1
        frame = frames[-1]
        if frame[2] is not None:
            run.remove_last()
            frame[2] = None
        if frame[1] >= len(frame[0]) or spent > budget:
            frames.pop()
            continue
        s, h = frame[0][frame[1]]
        frame[1] += 1
        instance, comp = todo[k]
        run.add(instance, comp, s, h)
        frame[2] = (s, h)
        if k + 1 == len(todo):
            spent += 1
            if not run.final_violations():
                return True
            continue
        open_frame(k + 1)
    return None if spent > budget else False
