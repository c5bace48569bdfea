"""Driver-actor overhead on libvirt's test:///default.

lifecycle_ops_per_s: define, start, destroy, undefine through the libvirt
DriverActor (a Pykka ask per operation, our state and capacity checks).
direct_ops_per_s: the same four calls with plain libvirt-python, same run.
ratio_vs_direct = lifecycle / direct (target >= 0.5). Also reported:
direct_with_events_ops_per_s, plain libvirt-python with a (no-op) Python
lifecycle-event callback registered, as the driver has, and its ratio.
JSON on the last line.

    .venv/bin/python bench/drivers.py [--cycles 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# This script is called drivers.py, so running it puts bench/ first on sys.path
# and would shadow the drivers package it measures.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import libvirt  # noqa: E402
import pykka  # noqa: E402

from drivers import VMSpec, start_driver_actor  # noqa: E402
from drivers.libvirt import LibvirtDriver, domain_xml, ensure_event_loop  # noqa: E402

URI = "test:///default"


def spec(i: int) -> VMSpec:
    return VMSpec(f"bench-{i}", 1, 64)


def through_actor(cycles: int) -> float:
    ref = start_driver_actor(lambda: LibvirtDriver(uri=URI, name="bench"))
    drv = ref.proxy()
    specs = [spec(i) for i in range(cycles)]  # as direct() prepares its XML before timing
    try:
        t0 = time.perf_counter()
        for i in range(cycles):
            name = f"bench-{i}"
            drv.define(specs[i]).get()
            drv.start_vm(name).get()
            drv.destroy(name).get()
            drv.undefine(name).get()
        return 4 * cycles / (time.perf_counter() - t0)
    finally:
        ref.stop()


def direct(cycles: int, with_events: bool = False) -> float:
    ensure_event_loop()  # same process conditions as the driver (event loop running)
    conn = libvirt.open(URI)
    if with_events:  # what the driver also does: receive every lifecycle event in Python
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lambda *a: None, None)
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
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    actor_runs, direct_runs, events_runs = [], [], []
    for r in range(args.rounds):  # interleaved, best of N: all see the same machine state
        direct_runs.append(direct(args.cycles))
        events_runs.append(direct(args.cycles, with_events=True))
        actor_runs.append(through_actor(args.cycles))
        print(f"round {r + 1}: direct {direct_runs[-1]:,.0f} ops/s, direct+events {events_runs[-1]:,.0f} ops/s, "
              f"driver actor {actor_runs[-1]:,.0f} ops/s")
    pykka.ActorRegistry.stop_all()
    best_actor, best_direct, best_events = max(actor_runs), max(direct_runs), max(events_runs)
    ratio = best_actor / best_direct
    print(f"lifecycle through the libvirt DriverActor: {best_actor:,.0f} ops/s "
          f"({ratio:.2f}x plain libvirt-python at {best_direct:,.0f} ops/s; target >= 0.5)")
    print(json.dumps({
        "lifecycle_ops_per_s": round(best_actor, 1),
        "direct_ops_per_s": round(best_direct, 1),
        "ratio_vs_direct": round(ratio, 3),
        "direct_with_events_ops_per_s": round(best_events, 1),
        "ratio_vs_direct_with_events": round(best_actor / best_events, 3),
        "cycles": args.cycles,
        "rounds": args.rounds,
        "uri": URI,
    }))


if __name__ == "__main__":
    main()
