"""Driver-actor overhead on libvirt's test:///default.

Every figure is a rate of lifecycle operations (define, start, destroy,
undefine: four per VM) measured in this run, interleaved round by round, best
of N rounds, against the same four calls made with plain libvirt-python on the
same URI (XML prepared before timing, no event callback): ``direct_ops_per_s``.

Through the libvirt DriverActor (a Pykka ask per operation, our checks,
capacity accounting, error translation):

- ``lifecycle_ops_per_s`` / ``ratio_vs_direct`` (the headline, target >= 0.5):
  pipelined. Per VM the caller issues its four operations as futures and
  waits once; the actor runs them in order. A caller driving one VM through
  several steps does not need each step's reply before sending the next.
- ``lifecycle_sequential_ops_per_s`` / ``ratio_sequential``: one ask, one
  wait, per operation. Each round trip costs two cross-thread wake-ups; on
  this 2-core VM a wake-up costs tens of microseconds, about what a
  test-driver call costs, which ``actor_floor_ops_per_s`` shows: a bare Pykka
  actor with the same mailbox making only the raw libvirt calls, one ask per
  operation.
- ``lifecycle_subscribed_ops_per_s`` (pipelined) and
  ``lifecycle_subscribed_sequential_ops_per_s``: the same with one (no-op)
  subscriber, so the driver watches libvirt's lifecycle events and libvirt
  delivers each into Python on its event thread (what a Wind agent runs:
  its site always subscribes). Compare with ``direct_with_events_ops_per_s``,
  plain libvirt-python with a no-op Python lifecycle callback.

JSON on the last line.

    .venv/bin/python bench/drivers.py [--cycles 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

# This script is called drivers.py, so running it puts bench/ first on sys.path
# and would shadow the drivers package it measures.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import libvirt  # noqa: E402
import pykka  # noqa: E402
import structlog  # noqa: E402
from supervisors import WatchedActor  # noqa: E402

from drivers import VMSpec, start_driver_actor  # noqa: E402
from drivers._mailbox import LatchFuture, simple_inbox  # noqa: E402
from drivers.libvirt import LibvirtDriver, domain_xml, ensure_event_loop  # noqa: E402

URI = "test:///default"


def spec(i: int) -> VMSpec:
    return VMSpec(f"bench-{i}", 1, 64)


def through_actor(cycles: int, *, pipelined: bool, subscribed: bool = False) -> float:
    ref = start_driver_actor(lambda: LibvirtDriver(uri=URI, name="bench"))
    drv = ref.proxy()
    if subscribed:
        drv.subscribe(lambda message: None).get()
    specs = [spec(i) for i in range(cycles)]  # as direct() prepares its XML before timing
    try:
        t0 = time.perf_counter()
        for s in specs:
            name = s.name
            if pipelined:
                futures = [drv.define(s), drv.start_vm(name), drv.destroy(name), drv.undefine(name)]
                futures[-1].get()  # the actor answers in order: the last reply means all are done
                for f in futures:
                    f.get()  # (already set) raises if any step failed
            else:
                drv.define(s).get()
                drv.start_vm(name).get()
                drv.destroy(name).get()
                drv.undefine(name).get()
        return 4 * cycles / (time.perf_counter() - t0)
    finally:
        ref.stop()


def direct(cycles: int, with_events: bool = False) -> float:
    ensure_event_loop()  # same process conditions as the driver (event loop running)
    conn = libvirt.open(URI)
    callback = None
    if with_events:  # what the driver does while it has subscribers
        callback = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lambda *a: None, None)
    try:
        xmls = [domain_xml(spec(i), domain_type="test") for i in range(cycles)]
        t0 = time.perf_counter()
        for xml in xmls:
            dom = conn.defineXML(xml)
            dom.create()
            dom.destroy()
            dom.undefine()
        return 4 * cycles / (time.perf_counter() - t0)
    finally:
        if callback is not None:
            # A registered callback holds the connection open past close(): left
            # registered, it would tax every later run in this process.
            conn.domainEventDeregisterAny(callback)
        conn.close()


class _BareActor(WatchedActor):
    """The floor: an actor that only makes the raw libvirt calls (same mailbox as DriverActor)."""

    _create_actor_inbox = staticmethod(simple_inbox)
    _create_future = staticmethod(LatchFuture)

    def __init__(self, xmls: list[str]) -> None:
        super().__init__()
        self._xmls = xmls
        self._doms: dict[int, Any] = {}

    def on_start(self) -> None:
        self._conn = libvirt.open(URI)

    def on_stop(self) -> None:
        self._conn.close()

    def on_receive(self, message: Any) -> Any:
        op, i = message
        if op == 0:
            self._doms[i] = self._conn.defineXML(self._xmls[i])
        elif op == 1:
            self._doms[i].create()
        elif op == 2:
            self._doms[i].destroy()
        else:
            self._doms.pop(i).undefine()
        return None


def actor_floor(cycles: int) -> float:
    ref = _BareActor.start_sync([domain_xml(spec(i), domain_type="test") for i in range(cycles)])
    try:
        t0 = time.perf_counter()
        for i in range(cycles):
            for op in range(4):
                ref.ask((op, i))
        return 4 * cycles / (time.perf_counter() - t0)
    finally:
        ref.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The driver logs every (re)connect; a bench round makes several.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    n = args.cycles
    runs: dict[str, Callable[[], float]] = {
        "direct": lambda: direct(n),
        "direct_with_events": lambda: direct(n, with_events=True),
        "pipelined": lambda: through_actor(n, pipelined=True),
        "sequential": lambda: through_actor(n, pipelined=False),
        "subscribed": lambda: through_actor(n, pipelined=True, subscribed=True),
        "subscribed_sequential": lambda: through_actor(n, pipelined=False, subscribed=True),
        "floor": lambda: actor_floor(n),
    }
    results: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):  # interleaved, best of N: all see the same machine state
        for key, run in runs.items():
            results[key].append(run())
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()) + " ops/s")
    pykka.ActorRegistry.stop_all()
    best = {k: max(v) for k, v in results.items()}
    d, de = best["direct"], best["direct_with_events"]
    print(f"plain libvirt-python: {d:,.0f} ops/s ({de:,.0f} with a Python event callback)")
    print(f"DriverActor, pipelined (headline): {best['pipelined']:,.0f} ops/s = {best['pipelined'] / d:.2f}x direct "
          "(target >= 0.5)")
    print(f"DriverActor, one ask per op:       {best['sequential']:,.0f} ops/s = {best['sequential'] / d:.2f}x direct; "
          f"a bare actor making only the libvirt calls: {best['floor']:,.0f} ops/s = {best['floor'] / d:.2f}x")
    print(f"with a subscriber (events watched): pipelined {best['subscribed']:,.0f} ops/s = "
          f"{best['subscribed'] / d:.2f}x direct, {best['subscribed'] / de:.2f}x direct-with-events; "
          f"one ask per op {best['subscribed_sequential']:,.0f} ops/s = {best['subscribed_sequential'] / d:.2f}x")
    print(json.dumps({
        "lifecycle_ops_per_s": round(best["pipelined"], 1),
        "direct_ops_per_s": round(d, 1),
        "ratio_vs_direct": round(best["pipelined"] / d, 3),
        "headline": "pipelined: four asks per VM, one wait",
        "lifecycle_sequential_ops_per_s": round(best["sequential"], 1),
        "ratio_sequential": round(best["sequential"] / d, 3),
        "actor_floor_ops_per_s": round(best["floor"], 1),
        "ratio_actor_floor": round(best["floor"] / d, 3),
        "lifecycle_subscribed_ops_per_s": round(best["subscribed"], 1),
        "ratio_subscribed": round(best["subscribed"] / d, 3),
        "lifecycle_subscribed_sequential_ops_per_s": round(best["subscribed_sequential"], 1),
        "ratio_subscribed_sequential": round(best["subscribed_sequential"] / d, 3),
        "direct_with_events_ops_per_s": round(de, 1),
        "ratio_subscribed_vs_direct_with_events": round(best["subscribed"] / de, 3),
        "cycles": n,
        "rounds": args.rounds,
        "uri": URI,
    }))


if __name__ == "__main__":
    main()
