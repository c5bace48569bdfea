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
  wait, per operation. Each round trip costs two cross-thread wake-ups,
  about what a test-driver call costs, which ``actor_floor_ops_per_s`` shows:
  a bare Pykka actor with the same mailbox making only the raw libvirt calls,
  one ask per operation.
- ``lifecycle_subscribed_ops_per_s`` (pipelined) and
  ``lifecycle_subscribed_sequential_ops_per_s``: the same with one (no-op)
  subscriber, so the driver watches libvirt's lifecycle events and libvirt
  delivers each into Python on its event thread (what a Wind agent runs:
  its site always subscribes). Compare with ``direct_with_events_ops_per_s``,
  plain libvirt-python with a no-op Python lifecycle callback.

Two CPU modes, both measured in every round, baseline included:

- ``one_cpu`` (the headline): every thread of the process pinned to one CPU,
  which is what a node does with ``[node] cpus = [N]`` (wind_actors.affinity).
- ``spread``: the process's default CPUs (the JSON's ``spread`` object).

Why both: on a VM, waking a thread on another vCPU that went idle costs
several times a wake on the same CPU, and under the GIL two threads gain
nothing from separate CPUs. ``thread_round_trip_us`` (one Python thread
handing a lock to another and back, no Wind code) shows the machine's own
hand-off cost in each mode.

JSON on the last line.

    .venv/bin/python bench/drivers.py [--cycles 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import threading
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
from drivers.libvirt import LibvirtDriver, domain_xml, ensure_event_loop  # noqa: E402
from wind_actors.affinity import allowed_cpus, pin_process  # noqa: E402

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


def thread_round_trip_us(n: int = 5000) -> float:
    """The machine's floor: one Python thread hands a lock to another and waits for it back."""
    inbox: queue.SimpleQueue[threading.Lock | None] = queue.SimpleQueue()

    def serve() -> None:
        while (lock := inbox.get()) is not None:
            lock.release()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    t0 = time.perf_counter()
    for _ in range(n):
        lock = threading.Lock()
        lock.acquire()
        inbox.put(lock)
        lock.acquire()
    took = time.perf_counter() - t0
    inbox.put(None)
    server.join()
    return took / n * 1e6


def _figures(best: dict[str, float], rtt_us: float) -> dict[str, float]:
    d, de = best["direct"], best["direct_with_events"]
    return {
        "lifecycle_ops_per_s": round(best["pipelined"], 1),
        "direct_ops_per_s": round(d, 1),
        "ratio_vs_direct": round(best["pipelined"] / d, 3),
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
        "thread_round_trip_us": round(rtt_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    spread = sorted(allowed_cpus())
    modes = {"one_cpu": [spread[-1]], "spread": spread}
    results = {m: {k: [] for k in runs} for m in modes}
    rtts: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for r in range(args.rounds):  # interleaved, best of N: all see the same machine state
            for mode, cpus in modes.items():
                pin_process(cpus)  # every thread: this one, the actors', libvirt's event loop
                rtts[mode].append(thread_round_trip_us())
                for key, run in runs.items():
                    results[mode][key].append(run())
                print(f"round {r + 1} {mode} (CPUs {cpus}): thread round trip {rtts[mode][-1]:.1f} us; "
                      + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results[mode].items()) + " ops/s")
    finally:
        pin_process(spread)
    pykka.ActorRegistry.stop_all()
    figures = {m: _figures({k: max(v) for k, v in results[m].items()}, statistics.median(rtts[m])) for m in modes}
    for mode, f in figures.items():
        print(f"[{mode}, CPUs {modes[mode]}] thread round trip {f['thread_round_trip_us']} us; plain libvirt-python "
              f"{f['direct_ops_per_s']:,.0f} ops/s ({f['direct_with_events_ops_per_s']:,.0f} with an event callback)")
        print(f"  DriverActor pipelined {f['lifecycle_ops_per_s']:,.0f} ops/s = {f['ratio_vs_direct']:.2f}x direct; "
              f"one ask per op {f['ratio_sequential']:.2f}x; bare-actor floor {f['ratio_actor_floor']:.2f}x; "
              f"subscribed {f['ratio_subscribed']:.2f}x ({f['ratio_subscribed_vs_direct_with_events']:.2f}x "
              f"direct-with-events), subscribed one ask per op {f['ratio_subscribed_sequential']:.2f}x")
    head = figures["one_cpu"]
    print(f"headline (one CPU, as [node] cpus = {modes['one_cpu']}): ratio_vs_direct {head['ratio_vs_direct']:.3f} "
          f"(target >= 0.5); spread over {len(spread)} CPUs: {figures['spread']['ratio_vs_direct']:.3f}")
    print(json.dumps({
        **head,
        "headline": "pipelined (four asks per VM, one wait), process pinned to one CPU; both sides in the same mode",
        "ratio_vs_direct_spread": figures["spread"]["ratio_vs_direct"],
        "ratio_sequential_spread": figures["spread"]["ratio_sequential"],
        "spread": figures["spread"],
        "cpus": modes,
        "cycles": n,
        "rounds": args.rounds,
        "uri": URI,
    }))


if __name__ == "__main__":
    main()
